// The conversation list: private chats and groups, newest first, with unread badges and
// previews kept live. Without a list on the page it still counts unread (for the tab title).

import {api} from "./net.js";
import {ConversationMenu} from "./convmenu.js";
import {announce, avatar, el} from "./dom.js";
import {formatFull, formatShort, t} from "./i18n.js";
import {Conversation} from "./protocol.js";

const {PRIVATE, GROUP} = Conversation;

// "private:<peer id>" or "group:<group id>": how the client names a conversation.
export function conversationKey(kind, id) {
  return `${kind}:${id}`;
}

// The key of the conversation a message belongs to, seen from `me`.
export function messageKey(message, me) {
  if (message.group_id !== null && message.group_id !== undefined) { return conversationKey(GROUP, message.group_id); }
  return conversationKey(PRIVATE, message.sender_id === me ? message.recipient_id : message.sender_id);
}

// The page address of a conversation: /chat/u/<peer id> or /chat/g/<group id>.
export function conversationUrl(conv) {
  return `/chat/${conv.kind === GROUP ? "g" : "u"}/${conv.id}`;
}

// The conversation ({kind, id, key}) a page address names, or null for any other page.
export function conversationAt(path) {
  const match = path.match(/^\/chat\/(u|g)\/(\d+)$/);
  if (!match) { return null; }
  const kind = match[1] === "g" ? GROUP : PRIVATE;
  const id = Number(match[2]);
  return {kind, id, key: conversationKey(kind, id)};
}

// The API's conversation object in the client's shape.
export function fromApi(item) {
  const id = item.kind === GROUP ? item.group_id : item.user_id;
  return {key: conversationKey(item.kind, id), kind: item.kind, id, name: item.name,
          last: item.last_message || null, unread: item.unread || 0, mentions: item.mentions || 0,
          peerLastRead: item.peer_last_read_id || 0, pinned: Boolean(item.pinned), muted: Boolean(item.muted),
          archived: Boolean(item.archived)};
}

// The list's order: pinned first; then newest first, where a conversation with nothing in it
// yet (a group just made, a chat just opened) counts as the newest of all.
function newerFirst(a, b) {
  if (a.pinned !== b.pinned) { return a.pinned ? -1 : 1; }
  const recency = (conv) => (conv.last ? conv.last.id : Number.MAX_SAFE_INTEGER);
  return (recency(b) - recency(a)) || (b.id - a.id);
}

// The list itself: conversation objects by key, rendered into listEl (when there is one).
export class ConversationList {
  constructor({listEl, emptyEl, me, onChange}) {
    this.listEl = listEl;      // null on pages without the list: counting only
    this.emptyEl = emptyEl;
    this.me = me;
    this.onChange = onChange;  // called after every change (title, nav badge)
    this.items = new Map();
    this.activeKey = null;
    this.refreshTimer = null;
    this.menu = listEl ? new ConversationMenu(this) : null;
    // The Archived folder under the list: loaded when opened (GET /api/conversations?archived=1).
    this.archived = new Map();
    this.archivedEl = document.getElementById("archived");
    this.archivedToggle = document.getElementById("archived-toggle");
    this.archivedToggle?.addEventListener("click", () => this.showArchived(this.archivedEl.hidden));
  }

  // Open or close the Archived folder.
  async showArchived(open) {
    this.archivedToggle.setAttribute("aria-expanded", String(open));
    this.archivedEl.hidden = !open;
    if (open) {
      const data = await api("GET", "/api/conversations?archived=1");
      this.archived = new Map(data.conversations.map(fromApi).map((conv) => [conv.key, conv]));
      this.renderArchived();
    }
  }

  renderArchived() {
    if (!this.archivedEl) { return; }
    const sorted = [...this.archived.values()].sort(newerFirst);
    this.archivedEl.replaceChildren(...sorted.map((conv) => this.renderItem(conv)));
    if (!sorted.length) { this.archivedEl.append(el("li", {class: "conv-empty-note muted", text: t("Nothing archived.")})); }
  }

  // The server's answer to a change made in the menu: the conversation as it is now.
  changed(key, answer) {
    const conv = {...(this.items.get(key) || this.archived.get(key) || {}), ...fromApi(answer)};
    if (conv.archived) {
      this.items.delete(key);
      this.archived.set(key, conv);
      announce(t("{name} archived", {name: conv.name}));
    } else {
      this.archived.delete(key);
      this.items.set(key, conv);
    }
    this.render();
    this.renderArchived();
  }

  // Tell the reader about a refused change (screen readers and the list's tooltip).
  say(text) {
    announce(text);
  }

  // Fetch the list from the API and show it.
  async load() {
    const data = await api("GET", "/api/conversations");
    const open = this.items.get(this.activeKey);
    this.items = new Map(data.conversations.map(fromApi).map((conv) => [conv.key, conv]));
    if (open && open.placeholder && !this.items.has(open.key)) { this.items.set(open.key, open); }
    this.render();
  }

  // Reload soon (several triggers in a row cost one request).
  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.load().catch(() => {}), 400);
  }

  // The conversation with this key, if the list has it.
  get(key) {
    return this.items.get(key);
  }

  // The largest message id the list knows: where sync starts after a (re)connect.
  maxId() {
    let max = 0;
    for (const conv of this.items.values()) { if (conv.last && conv.last.id > max) { max = conv.last.id; } }
    return max;
  }

  // Unread messages over all conversations; a muted one counts only its mentions.
  totalUnread() {
    let total = 0;
    for (const conv of this.items.values()) { total += conv.muted ? conv.mentions : conv.unread; }
    return total;
  }

  // A new message (live or from sync): new preview, one more unread unless it is being read.
  applyMessage(message, beingRead) {
    const key = messageKey(message, this.me);
    let conv = this.items.get(key);
    if (!conv) {
      if (message.group_id === null && message.sender_id === this.me && message.recipient_id !== this.me) {
        this.refreshSoon();  // we wrote to someone new from another tab: the list knows their name
        return;
      }
      if (this.archived.has(key)) {  // an archived conversation comes back (unless muted): the server decides
        this.refreshSoon();
        if (!this.archivedEl?.hidden) { this.showArchived(true).catch(() => {}); }
        return;
      }
      const isGroup = message.group_id !== null;
      conv = {key, kind: isGroup ? GROUP : PRIVATE, id: isGroup ? message.group_id : message.sender_id,
              name: isGroup ? "" : message.sender_name, last: null, unread: 0, mentions: 0, peerLastRead: 0};
      this.items.set(key, conv);
      if (isGroup) { this.refreshSoon(); }  // the group's name comes with the list
    }
    if (conv.last && message.id <= conv.last.id) { return; }  // already counted
    conv.last = message;
    if (message.sender_id !== this.me && !beingRead) {
      conv.unread += 1;
      if (message.mention_all || (message.mentions || []).includes(this.me)) { conv.mentions += 1; }
    }
    this.render();
  }

  // An edit or take-back of a conversation's last message changes its preview.
  applyUpdate(update) {
    const conv = this.items.get(messageKey(update, this.me));
    if (!conv || !conv.last || conv.last.id !== update.message_id) { return; }
    if (update.update === "edit") { conv.last = {...conv.last, content: update.content}; }
    else if (update.update === "recall") { conv.last = {...conv.last, content: "", recalled: true}; }
    else { return; }
    this.render();
  }

  // Our read cursor moved (here or on another device): clear what it covers.
  markRead(key, lastReadId) {
    const conv = this.items.get(key);
    if (!conv || !conv.unread) { return; }
    if (!conv.last || lastReadId >= conv.last.id) {
      conv.unread = 0;
      conv.mentions = 0;
      this.render();
    } else {
      this.refreshSoon();  // read part-way: only the server can count what is left
    }
  }

  // The other side of a private chat read up to here.
  setPeerRead(key, lastReadId) {
    const conv = this.items.get(key);
    if (conv && lastReadId > conv.peerLastRead) { conv.peerLastRead = lastReadId; }
  }

  // A group we left, were removed from, or that was deleted.
  remove(key) {
    if (this.items.delete(key)) { this.render(); }
  }

  // Highlight the open conversation. One the list does not have yet (a chat with someone
  // never written to) is listed while it is open, and kept once something is written.
  setActive(key, conv = null) {
    this.activeKey = key;
    for (const [k, item] of this.items) {
      if (item.placeholder && k !== key && !item.last) { this.items.delete(k); }
    }
    if (key && conv && !this.items.has(key)) {
      this.items.set(key, {key, kind: conv.kind, id: conv.id, name: conv.name, last: null, unread: 0,
                           mentions: 0, peerLastRead: 0, pinned: false, muted: false, placeholder: true});
    }
    this.render();
  }

  // Redraw the list (keeping keyboard focus on the same conversation) and tell the page.
  render() {
    if (this.listEl) {
      const focusedKey = document.activeElement?.closest?.(".conv")?.dataset.key;
      const sorted = [...this.items.values()].sort(newerFirst);
      this.listEl.replaceChildren(...sorted.map((conv) => this.renderItem(conv)));
      if (this.emptyEl) { this.emptyEl.hidden = sorted.length > 0; }
      if (focusedKey) { this.listEl.querySelector(`.conv[data-key="${focusedKey}"] a`)?.focus(); }
    }
    this.onChange(this);
  }

  // One row: avatar, name, time, preview ("You: ..." / "alice: ..."), unread badge.
  renderItem(conv) {
    const active = conv.key === this.activeKey;
    const last = conv.last;
    const top = el("span", {class: "conv-top"}, el("span", {class: "conv-name", text: conv.name}));
    const bottom = el("span", {class: "conv-bottom"});
    if (last) {
      const when = new Date(last.created_at);
      top.append(el("time", {class: "conv-time", datetime: last.created_at, title: formatFull(when),
                             text: formatShort(when)}));
      bottom.append(el("span", {class: "conv-preview", text: this.preview(conv, last)}));
    } else {
      bottom.append(el("span", {class: "conv-preview"}));
    }
    if (conv.mentions) {
      bottom.append(el("span", {class: "badge mention-badge", title: t("You were mentioned"), "aria-hidden": "true", text: "@"}),
                    el("span", {class: "visually-hidden", text: t("You were mentioned")}));
    }
    if (conv.unread) {
      bottom.append(el("span", {class: "badge", "aria-hidden": "true", text: String(conv.unread)}),
                    el("span", {class: "visually-hidden", text: t("{n} unread", {n: conv.unread})}));
    }
    if (conv.pinned || conv.muted) {
      top.querySelector(".conv-name").after(el("span", {class: "conv-flags", text: `${conv.pinned ? "📌" : ""}${conv.muted ? "🔕" : ""}`,
                                                        title: [conv.pinned && t("Pinned"), conv.muted && t("Muted")].filter(Boolean).join(", ")}));
    }
    const link = el("a", {href: conversationUrl(conv), "aria-current": active ? "page" : null},
                    avatar(conv.id, conv.name, conv.kind === GROUP),
                    el("span", {class: "conv-main"}, top, bottom));
    return el("li", {class: `conv${conv.unread ? " has-unread" : ""}${active ? " active" : ""}${conv.muted ? " muted" : ""}`,
                     dataset: {key: conv.key}}, link, conv.placeholder || !this.menu ? null : this.menu.button(conv));
  }

  // The last message as a one-line preview, with who wrote it where that matters.
  preview(conv, last) {
    if (last.recalled) {
      return last.sender_id === this.me ? t("You took back a message")
        : t("{name} took back a message", {name: last.sender_name});
    }
    const text = last.content.replace(/\s+/g, " ").slice(0, 120);
    if (last.sender_id === this.me) { return `${t("You")}: ${text}`; }
    if (conv.kind === GROUP) { return `${last.sender_name}: ${text}`; }
    return text;
  }
}
