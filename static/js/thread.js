// The open conversation: history that loads as you scroll up, live messages in id order,
// the composer (Enter sends, Shift+Enter breaks the line), pending / sent / failed states,
// "Seen", and day separators in the viewer's time zone (the typing line is typing.js). Rich messages
// (quotes, reactions, edits, take-backs, mentions) are drawn by rich.js; the message menu and
// the reply / edit bar live in actions.js, the "@" suggestions in mentions.js.

import {api} from "./net.js";
import {announce, avatar, el} from "./dom.js";
import {conversationKey, messageKey} from "./conversations.js";
import {dayKey, formatDay, formatFull, formatTime, t} from "./i18n.js";
import {Conversation, Frame} from "./protocol.js";
import {changeMessage, editedMark, messageBody, reactionsRow, recalledText, replyQuote} from "./rich.js";
import {MessageActions} from "./actions.js";
import {MentionPicker} from "./mentions.js";
import {TypingIndicator} from "./typing.js";
import {attachmentsView, quoteThumb, tray} from "./uploads.js";
import {LengthCounter} from "./limit.js";
import {keepAtBottom, newestShown} from "./stick.js";

const PAGE = 30;                   // messages per history page
const UNREAD_PAGES = 10;           // older pages loaded at most to open at the first unread
const GROUP_GAP = 5 * 60 * 1000;   // same sender within 5 minutes: drawn as one run
const NEAR_BOTTOM = 120;           // px from the end that still count as "at the bottom"
const LOAD_OLDER_AT = 150;         // px from the top where the next older page is fetched
const MESSAGE_HASH = /^#message-(\d+)$/;  // /chat/u/2#message-55: open the conversation at message 55

// The login page, coming back to this conversation.
function loginUrl() {
  return `/login?next=${encodeURIComponent(location.pathname)}`;
}

// The small mark in a bubble of ours: sending, sent or failed (with words for screen readers).
function stateMark(state) {
  const glyph = {pending: "…", sent: "✓", failed: "!"}[state];
  const label = {pending: t("Sending…"), sent: t("Sent"), failed: t("Not sent")}[state];
  return el("span", {class: "msg-state", title: label},
            el("span", {"aria-hidden": "true", text: glyph}),
            el("span", {class: "visually-hidden", text: label}));
}

// The right-hand pane (the whole screen on a phone) for one conversation at a time.
export class Thread {
  constructor({me, myName, socket, outbox, list, names}) {
    this.me = me;
    this.myName = myName;
    this.socket = socket;
    this.outbox = outbox;
    this.list = list;
    this.names = names;
    const $ = (id) => document.getElementById(id);
    this.dom = {layout: $("chat"), section: $("thread"), empty: $("thread-empty"),
                title: $("thread-title"), sub: $("thread-sub"), avatar: $("thread-avatar"),
                info: $("thread-info"), scroller: $("scroller"), messages: $("messages"),
                older: $("older"), note: $("history-note"), jump: $("jump"), typing: $("typing"),
                form: $("composer"), text: $("text"), send: $("send"), hint: $("composer-hint")};
    this.hintText = this.dom.hint.textContent;
    // The server's content limit in code points (CHAT_MAX_CONTENT), checked before sending.
    this.maxContent = Number(this.dom.layout.dataset.maxContent) || Infinity;
    this.counter = new LengthCounter(this.dom.text, this.maxContent);
    this.releaseBottom = keepAtBottom(this.dom.scroller, this.dom.messages);
    this.actions = new MessageActions(this);
    this.mentionPicker = new MentionPicker(this.dom.text, this.dom.form);
    this.typingLine = new TypingIndicator({me, socket, names, node: this.dom.typing, current: () => this.conv});
    this.conv = null;
    this.generation = 0;
    this.reset();
    this.wire();
  }

  // Forget everything about the previous conversation.
  reset() {
    this.generation += 1;
    this.clearHistory();
    this.memberNames = new Map();  // the open group's members: id -> username (for mentions)
    this.groupOwner = null;
    this.actions?.cancelMode();
    this.actions?.closeMenu();
    this.mentionPicker?.setMembers([], false);
    this.readSent = 0;
    this.peerLastRead = 0;
    this.locked = false;
    this.typingLine?.reset();
  }

  // Forget the loaded messages (a new conversation, or a jump to a message far from them).
  clearHistory() {
    this.view = (this.view || 0) + 1;  // history answers for an older view are dropped
    this.byId = new Map();     // message id -> <li>
    this.byCid = new Map();    // client_id -> <li> of a message still waiting for its ack
    this.messages = new Map(); // message id -> the message as it is now (edits, reactions applied)
    this.oldestId = null;
    this.newestId = 0;
    this.hasMore = false;
    this.hasNewer = false;     // opened at a message: newer pages are still to load (scrolling down)
    this.heldLive = [];        // live messages that came meanwhile, shown once the newest page is here
    this.loading = false;
  }

  // Hook up the composer, the scroller and the buttons.
  wire() {
    const {form, text, scroller, older, jump} = this.dom;
    form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    text.addEventListener("keydown", (event) => {
      // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition
      // (Chinese input) must not send half-typed text.
      if (event.key === "ArrowUp" && !text.value && this.conv && !this.locked && this.actions.editLast()) {
        event.preventDefault();
        return;
      }
      if (event.key === "Escape" && this.actions.active) {
        event.preventDefault();
        this.actions.cancelMode();
        return;
      }
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) { return; }
      event.preventDefault();
      this.submit();
    });
    text.addEventListener("input", () => {
      text.setCustomValidity("");
      this.autosize();
      this.typingLine.send(text.value, this.locked);
    });
    scroller.addEventListener("scroll", () => this.scrolled(), {passive: true});
    older.addEventListener("click", () => this.loadPage(this.oldestId));
    jump.addEventListener("click", () => {
      if (this.hasNewer) { this.reloadNewest(); } else { this.scrollToBottom(); }
      this.dom.text.focus();
    });
  }

  // Open a conversation ({kind, id, name}): header, waiting messages, newest history page.
  async open(conv) {
    this.reset();
    this.conv = {...conv, key: conversationKey(conv.kind, conv.id)};
    this.showHeader();
    this.dom.messages.replaceChildren();
    this.dom.jump.hidden = true;
    this.dom.older.hidden = true;
    this.dom.note.hidden = true;
    this.setLocked(false, "");
    this.dom.section.hidden = false;
    this.dom.empty.hidden = true;
    this.dom.layout.classList.add("has-thread");
    const known = this.list.get(this.conv.key);
    this.peerLastRead = known ? known.peerLastRead : 0;
    this.unreadAtOpen = known ? known.unread : 0;  // where the "New messages" line goes
    for (const item of this.outbox.forConversation(this.conv.key)) { this.showOutgoing(item); }
    if (window.matchMedia("(pointer: fine)").matches) { this.dom.text.focus(); }
    const at = location.hash.match(MESSAGE_HASH);
    if (at) {  // a search result (or a link to a message): open there, once
      history.replaceState(history.state, "", location.pathname + location.search);
      await this.loadAround(Number(at[1]));
    } else {
      await this.loadPage(null);
    }
  }

  // Close the conversation (the list alone, as on a phone's first screen).
  close() {
    this.reset();
    this.conv = null;
    this.dom.section.hidden = true;
    this.dom.empty.hidden = false;
    this.dom.layout.classList.remove("has-thread");
  }

  // Title, picture, subtitle and the profile / group-info link of the open conversation.
  showHeader() {
    const {kind, id, name} = this.conv;
    const isGroup = kind === Conversation.GROUP;
    this.dom.title.textContent = name;
    this.dom.avatar.replaceChildren(avatar(id, name, isGroup));
    this.dom.info.href = isGroup ? `/groups/${id}` : `/users/${id}`;
    this.dom.info.textContent = isGroup ? t("Group info") : t("Profile");
    this.dom.sub.textContent = !isGroup && id === this.me ? t("Notes to self") : "";
    if (isGroup) {
      const generation = this.generation;
      api("GET", `/api/groups/${id}`).then((group) => {
        if (generation !== this.generation) { return; }
        const n = group.member_count;
        this.dom.sub.textContent = t(n === 1 ? "{n} member" : "{n} members", {n});
        this.groupOwner = group.owner_id;
        return api("GET", `/api/groups/${id}/members`);
      }).then((answer) => {
        if (generation !== this.generation || !answer) { return; }
        this.memberNames = new Map(answer.members.map((m) => [m.id, m.username]));
        this.mentionPicker.setMembers(answer.members.filter((m) => m.id !== this.me), this.groupOwner === this.me);
        for (const [mid, m] of this.messages) {  // their mentions can be marked now
          if (m.mention_all || (m.mentions || []).length) { this.redraw(mid); }
        }
      }).catch(() => {});
    }
  }

  // The API path of the open conversation's history.
  historyBase() {
    const {kind, id} = this.conv;
    return kind === Conversation.GROUP ? `/api/groups/${id}/messages` : `/api/messages/${id}`;
  }

  // The API path of a history page (the newest one, or the one before `before`).
  historyPath(before) {
    return `${this.historyBase()}?limit=${PAGE}${before ? `&before_id=${before}` : ""}`;
  }

  // Fetch one page of history and put it in place, keeping the reader's scroll position.
  async loadPage(before) {
    if (this.loading || !this.conv) { return; }
    this.loading = true;
    const generation = this.view;
    const {scroller, note} = this.dom;
    note.textContent = t("Loading…");
    note.hidden = false;
    try {
      const page = await api("GET", this.historyPath(before));
      if (generation !== this.view) { return; }
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      this.hasMore = page.has_more;
      this.insert(page.messages);
      if (before) { scroller.scrollTop = scroller.scrollHeight - fromBottom; }
      else {
        await this.loadUnreadBacklog(generation);
        if (generation !== this.view) { return; }
        if (!this.placeDivider(this.unreadAtOpen)) { this.scrollToBottom(); }
      }
      this.unreadAtOpen = 0;
      this.updateHistoryTop();
      this.markRead();
    } catch (error) {
      if (generation !== this.view) { return; }
      note.textContent = t("Could not load the conversation.");
      this.dom.older.hidden = false;
    } finally {
      if (generation === this.view) { this.loading = false; }
    }
    // A short page may not fill the pane (no scrolling, so no scroll event): fetch on.
    if (generation === this.view && this.hasMore && scroller.scrollHeight <= scroller.clientHeight) {
      this.loadPage(this.oldestId);
    }
  }

  // The loaded messages of the other side (what "unread" counts), oldest first.
  othersLoaded() {
    return [...this.dom.messages.querySelectorAll(":scope > .msg[data-id]")]
      .filter((li) => Number(li.dataset.sender) !== this.me);
  }

  // A backlog longer than the first page: older pages until its first message is loaded
  // (at most UNREAD_PAGES more), so that the conversation opens there, as chats do.
  async loadUnreadBacklog(generation) {
    for (let n = 0; n < UNREAD_PAGES && this.hasMore && this.unreadAtOpen > this.othersLoaded().length; n += 1) {
      const page = await api("GET", this.historyPath(this.oldestId));
      if (generation !== this.view) { return; }
      this.hasMore = page.has_more;
      this.insert(page.messages);
    }
  }

  // Opened with unread messages: a "New messages" line above the first of them, that line at
  // the top of the pane, and the button to jump to the newest. False when there is none here.
  placeDivider(unread) {
    this.dom.messages.querySelector(".unread-divider")?.remove();
    const others = this.othersLoaded();
    // A backlog longer than UNREAD_PAGES pages opens at the newest (the line would have to
    // go above messages not loaded).
    if (!unread || unread > others.length) { return false; }
    const first = others[others.length - unread];
    this.dom.messages.querySelector(".first-unread")?.classList.remove("first-unread");
    first.classList.add("first-unread");
    first.prepend(el("div", {class: "unread-divider", role: "separator", text: t("New messages")}));
    this.releaseBottom();
    first.scrollIntoView({block: "start"});
    if (!this.nearBottom()) { this.dom.jump.hidden = false; }
    return true;
  }

  // Open the history at message `id`: the page around it, scrolled to it and highlighted;
  // older pages then load upward and newer ones downward as the reader scrolls.
  async loadAround(id, missing = t("The message could not be found.")) {
    if (!this.conv) { return false; }
    this.loading = true;
    const view = this.view;
    const {note, scroller} = this.dom;
    note.textContent = t("Loading…");
    note.hidden = false;
    let page;
    try {
      page = await api("GET", `${this.historyBase()}?around_id=${id}&limit=${PAGE}`);
    } catch (error) {
      page = null;
    }
    if (view !== this.view) { return false; }
    this.loading = false;
    if (!page) {  // gone, or not of this conversation: show the newest page instead
      this.actions.showError(missing);
      await this.loadPage(null);
      return false;
    }
    this.hasMore = page.has_more;
    this.hasNewer = page.has_newer;
    this.releaseBottom();  // we scroll to the message, not to the bottom
    this.insert(page.messages);
    this.updateHistoryTop();
    this.flash(id);
    if (!this.hasNewer) { this.insert(this.heldLive.splice(0)); this.markRead(); }
    // A page that does not fill the pane gives no scroll event: fetch on both ways.
    if (scroller.scrollHeight <= scroller.clientHeight) {
      if (this.hasMore) { await this.loadPage(this.oldestId); }
      if (this.hasNewer && view === this.view) { await this.loadNewer(); }
    }
    return true;
  }

  // Fetch the page after the newest loaded message (opened at a message, scrolling down).
  async loadNewer() {
    if (this.loading || !this.conv || !this.hasNewer) { return; }
    this.loading = true;
    const view = this.view;
    try {
      // The history pages back (before_id) or around a message: around the newest loaded one,
      // with PAGE older ones (already here, skipped) and up to PAGE newer ones.
      const page = await api("GET", `${this.historyBase()}?around_id=${this.newestId}&limit=${2 * PAGE + 1}`);
      if (view !== this.view) { return; }
      this.hasNewer = page.has_newer;
      this.insert(page.messages);
      if (!this.hasNewer) {  // the newest page: live messages that came meanwhile, then as usual
        this.insert(this.heldLive.splice(0));
        this.markRead();
      }
    } catch (error) {
      if (view !== this.view) { return; }
      this.actions.showError(t("Could not load the conversation."));
    } finally {
      if (view === this.view) { this.loading = false; }
    }
  }

  // Leave a place far back in history for the newest messages (the "New messages" button, sending).
  async reloadNewest() {
    this.clearHistory();
    this.dom.messages.replaceChildren();
    for (const item of this.outbox.forConversation(this.conv.key)) { this.showOutgoing(item); }
    await this.loadPage(null);
  }

  // Scroll message `id` into the middle of the pane and highlight it for a moment.
  flash(id) {
    const node = this.byId.get(id);
    if (!node) { return; }
    node.scrollIntoView({block: "center"});
    node.classList.remove("flash-in");
    void node.offsetWidth;  // restart the highlight's animation
    node.classList.add("flash-in");
  }

  // The top of the history: "Load older messages", or a note that this is the beginning.
  updateHistoryTop() {
    const {older, note} = this.dom;
    older.hidden = !this.hasMore;
    note.hidden = this.hasMore;
    if (!this.hasMore) {
      note.textContent = this.byId.size ? t("This is the beginning of the conversation.")
        : t("No messages yet. Say hello!");
    }
  }

  // Whether a message belongs to the open conversation.
  accepts(message) {
    return Boolean(this.conv) && messageKey(message, this.me) === this.conv.key;
  }

  // Whether the viewer is looking at conversation `key` now (new messages there count as read).
  isReading(key) {
    return Boolean(this.conv) && this.conv.key === key && !this.locked
      && document.visibilityState === "visible";
  }

  // Add stored messages (a history page, a live one, a sync) in id order; each id shows once.
  insert(messages, {live = false} = {}) {
    if (live && this.hasNewer) {  // newer pages are still to load: these come after them
      this.heldLive.push(...messages);
      this.dom.jump.hidden = false;
      return;
    }
    const atBottom = this.nearBottom();
    let added = 0;
    for (const message of messages) {
      if (this.byId.has(message.id)) { continue; }
      const node = this.renderMessage(message);
      const waiting = message.client_id && message.sender_id === this.me && this.byCid.get(message.client_id);
      if (waiting) {  // our pending bubble becomes the stored message
        waiting.remove();
        this.byCid.delete(message.client_id);
      }
      this.byId.set(message.id, node);
      this.place(node, message.id);
      this.oldestId = this.oldestId === null ? message.id : Math.min(this.oldestId, message.id);
      this.newestId = Math.max(this.newestId, message.id);
      added += 1;
      if (live && message.sender_id !== this.me) {
        this.typingLine.stop(message.sender_id);
        announce(`${t("New message from {name}", {name: message.sender_name})}: ${message.content}`);
      }
    }
    if (!added) { return; }
    this.decorate();
    if (!live) { return; }
    if (atBottom || messages.every((m) => m.sender_id === this.me)) { this.scrollToBottom(); }
    else { this.dom.jump.hidden = false; }
    if (this.hasMore === false) { this.updateHistoryTop(); }
  }

  // Put a stored message's <li> after the last stored one with a smaller id (waiting ones stay last).
  place(node, id) {
    const list = this.dom.messages;
    for (let child = list.lastElementChild; child; child = child.previousElementSibling) {
      if (child.dataset.id && Number(child.dataset.id) < id) {
        child.after(node);
        return;
      }
    }
    list.prepend(node);
  }

  // A stored message as an <li> (kept in this.messages, so updates can redraw it).
  renderMessage(message) {
    this.messages.set(message.id, message);
    const mine = message.sender_id === this.me;
    const when = new Date(message.created_at);
    const mentionsMe = !mine && (message.mention_all || (message.mentions || []).includes(this.me));
    const li = el("li", {class: `msg${mine ? " mine" : ""}${message.recalled ? " recalled" : ""}${mentionsMe ? " mentions-me" : ""}`,
                         dataset: {id: message.id, sender: message.sender_id, at: when.getTime()}});
    this.fill(li, {mine, sender: mine ? this.myName : message.sender_name, message, when, state: mine ? "sent" : null});
    if (!message.recalled) { this.actions.attach(li, message); }
    return li;
  }

  // Draw a stored message again after an update (edit, take back, reactions).
  redraw(id) {
    const old = this.byId.get(id);
    const message = this.messages.get(id);
    if (!old || !message) { return; }
    const atBottom = this.nearBottom();  // a new row of reactions must not push the newest out of sight
    const node = this.renderMessage(message);
    if (this.actions.menu && old.contains(this.actions.menu.node)) { this.actions.closeMenu(); }
    old.replaceWith(node);
    this.byId.set(id, node);
    this.decorate();
    if (atBottom) { this.scrollToBottom(); }
  }

  // One of our messages still in the outbox (pending or failed), drawn at the end of the list.
  showOutgoing(item) {
    const li = el("li", {class: `msg mine ${item.state}`,
                         dataset: {cid: item.cid, sender: this.me, at: item.createdAt.getTime()}});
    const message = {content: item.content, reply_to: item.replyTo || null, mentions: item.frame.mentions || [],
                     mention_all: Boolean(item.frame.mention_all), reactions: [], attachments: item.files || []};
    this.fill(li, {mine: true, sender: this.myName, message, when: item.createdAt,
                   state: item.state, error: item.error, cid: item.cid, canRetry: item.canRetry});
    const old = this.byCid.get(item.cid);
    if (old) { old.replaceWith(li); } else { this.dom.messages.append(li); }
    this.byCid.set(item.cid, li);
    this.decorate();
  }

  // Edit or Delete on a failed message: it leaves the outbox; Edit puts its text in the composer.
  dropOutgoing(cid, edit) {
    const item = this.outbox.discard(cid);
    this.byCid.get(cid)?.remove();
    this.byCid.delete(cid);
    if (!item || !edit || this.locked) { return; }
    this.dom.text.value = item.content;
    this.dom.text.dispatchEvent(new Event("input"));
    this.dom.text.focus();
  }

  // The outbox changed an item (failed, retried): redraw it if it is in this conversation.
  outgoingChanged(item) {
    if (this.conv && item.key === this.conv.key && this.byCid.has(item.cid)) { this.showOutgoing(item); }
  }

  // The lowercase names a message mentions (to mark them in its text).
  mentionNames(message) {
    const found = new Set();
    for (const id of message.mentions || []) {
      const name = this.memberNames.get(id);
      if (name) { found.add(name.toLowerCase()); }
    }
    if (message.mention_all) { found.add("all"); }
    return found;
  }

  // The inside of a message <li>: sender (groups), bubble with the quote it answers, text (or
  // "took back"), time, "edited" and state, reactions under it; for a failed one the reason,
  // with Retry when given the client_id to retry.
  fill(li, {mine, sender, message, when, state, error, cid, canRetry}) {
    if (this.conv.kind === Conversation.GROUP && !mine) {
      li.append(el("span", {class: "msg-sender", "aria-hidden": "true", text: sender}));
    }
    const meta = el("span", {class: "msg-meta"},
                    el("time", {datetime: when.toISOString(), title: formatFull(when), text: formatTime(when)}));
    if (message.edited_at && !message.recalled) { meta.append(editedMark(message.edited_at)); }
    if (state) { meta.append(stateMark(state)); }
    const body = message.recalled
      ? el("span", {class: "msg-recalled", text: recalledText(mine, sender)})
      : messageBody(message.content, this.mentionNames(message));
    const quote = message.reply_to && !message.recalled
      ? replyQuote(message.reply_to, this.names, () => this.showMessage(message.reply_to.id),
                   quoteThumb(message.reply_to, this.messages.get(message.reply_to.id),
                              this.conv && this.historyBase())) : null;
    const files = message.recalled ? null : attachmentsView(message.attachments);
    li.append(el("div", {class: "bubble", title: formatFull(when)},
                 el("span", {class: "visually-hidden", text: `${mine ? t("You") : sender}: `}),
                 quote, body, files, meta));
    if (message.id && !message.recalled) {
      const row = reactionsRow(message.reactions, this.me, this.names,
                               (emoji, on) => this.actions.react(message.id, emoji, on));
      if (row) { li.append(row); }
    }
    if (state === "failed") {
      li.append(el("div", {class: "msg-error", role: "alert"},
                   el("span", {text: `${t("Not sent")}: ${error}`}),
                   canRetry && el("button", {type: "button", class: "secondary small retry", text: t("Retry"),
                                             onclick: () => this.outbox.retry(cid)}),
                   el("button", {type: "button", class: "secondary small edit-failed", text: t("Edit"),
                                 onclick: () => this.dropOutgoing(cid, true)}),
                   el("button", {type: "button", class: "secondary small delete-failed", text: t("Delete"),
                                 onclick: () => this.dropOutgoing(cid, false)})));
    }
  }

  // An update (edit, take back, reaction; live, from sync, or our own just made): change the
  // message and the quotes of the answers to it, and redraw them.
  applyUpdate(update) {
    const id = update.message_id;
    if (update.update === "edit" || update.update === "recall") {
      const recalled = update.update === "recall";
      for (const other of this.messages.values()) {
        if (!other.reply_to || other.reply_to.id !== id) { continue; }
        other.reply_to = {...other.reply_to, recalled,
                          excerpt: recalled ? "" : [...update.content].slice(0, 100).join("")};
        this.redraw(other.id);
      }
    }
    const message = this.messages.get(id);
    if (!message || !changeMessage(message, update)) { return; }
    if (message.recalled) { this.actions.forget(id); }
    this.redraw(id);
  }

  // Scroll to message `id` (a quote was clicked), loading older pages until it is there.
  // A message one page back loads that page; one further back opens the history around it.
  async showMessage(id) {
    const generation = this.generation;
    let tries = 1;
    while (!this.byId.has(id) && generation === this.generation && (this.loading || this.hasMore)
           && (this.oldestId === null || id < this.oldestId)) {
      if (this.loading) { await new Promise((resolve) => setTimeout(resolve, 100)); continue; }
      if (tries-- <= 0) { break; }
      await this.loadPage(this.oldestId);
    }
    if (generation !== this.generation) { return; }
    if (this.byId.has(id)) { this.flash(id); return; }
    this.clearHistory();
    this.dom.messages.replaceChildren();
    for (const item of this.outbox.forConversation(this.conv.key)) { this.showOutgoing(item); }
    await this.loadAround(id, t("The original message could not be found."));
  }

  // Day separators and runs of one sender, recomputed over the whole list after each change.
  decorate() {
    const list = this.dom.messages;
    for (const separator of list.querySelectorAll(":scope > .day")) { separator.remove(); }
    let previousDay = null;
    let previous = null;
    for (const li of [...list.children]) {
      const at = Number(li.dataset.at);
      const day = dayKey(new Date(at));
      if (day !== previousDay) {
        li.before(el("li", {class: "day"}, formatDay(new Date(at))));
        previousDay = day;
        previous = null;
      }
      const continues = previous && previous.dataset.sender === li.dataset.sender
        && at - Number(previous.dataset.at) < GROUP_GAP;
      li.classList.toggle("cont", Boolean(continues));
      previous = li;
    }
    this.updateSeen();
  }

  // "Seen" under our newest private message once the other side has read it.
  updateSeen() {
    this.dom.messages.querySelector(".seen")?.remove();
    if (!this.conv || this.conv.kind !== Conversation.PRIVATE || this.conv.id === this.me) { return; }
    const stored = this.dom.messages.querySelectorAll(":scope > .msg[data-id]");
    const last = stored[stored.length - 1];
    if (last && last.classList.contains("mine") && Number(last.dataset.id) <= this.peerLastRead) {
      last.append(el("div", {class: "seen", text: t("Seen")}));
    }
  }

  // A read receipt: the other side of this private chat read up to last_read_id.
  peerRead(frame) {
    if (!this.conv || this.conv.kind !== Conversation.PRIVATE || frame.user_id !== this.conv.id) { return; }
    if (frame.last_read_id > this.peerLastRead) {
      this.peerLastRead = frame.last_read_id;
      this.updateSeen();
    }
  }

  // Tell the server (and the list) that we have read the open conversation up to its newest message.
  // Only what has been on screen in a visible, focused tab counts as read (not the whole
  // conversation because it is open): the newest message shown, not the newest loaded.
  markRead() {
    if (!this.isReading(this.conv?.key) || !this.newestId || this.hasNewer || !document.hasFocus()) { return; }
    const seen = newestShown(this.dom.scroller, this.dom.messages);
    if (!seen) { return; }
    if (seen > this.readSent && this.socket.send({type: Frame.MARK_READ, recipient_id: this.conv.id,
                                                  group: this.conv.kind === Conversation.GROUP,
                                                  last_read_id: seen})) {
      this.readSent = seen;
    }
    this.list.markRead(this.conv.key, seen);
  }

  // Mark read shortly (a burst of messages, e.g. a sync, costs one read frame).
  markReadSoon() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(), 250);
  }

  // After a reconnect the server may have missed our last read: send it again.
  forgetReadSent() {
    this.readSent = 0;
  }

  // Send what is in the composer: it shows at once as pending, and turns to sent on its ack.
  async submit() {
    const {text} = this.dom;
    const content = text.value;
    const withFiles = Boolean(tray?.count) && !this.actions.editing;
    if (!this.conv || this.locked || this.waitingForFiles || (!content.trim() && !withFiles)) { return; }
    if (!this.counter.update()) {  // the server would refuse it: keep it here to shorten
      text.setCustomValidity(t("The message is too long."));
      text.reportValidity();
      return;
    }
    if (this.actions.editing) {
      this.actions.submitEdit(content);
      return;
    }
    const isGroup = this.conv.kind === Conversation.GROUP;
    const frame = {type: isGroup ? Frame.GROUP_MESSAGE : Frame.PRIVATE_MESSAGE, recipient_id: this.conv.id, content};
    if (this.actions.replyTo) { frame.reply_to = this.actions.replyTo.id; }
    if (isGroup) {
      const {ids, all} = this.mentionPicker.mentionsIn(content);
      if (ids.length) { frame.mentions = ids; }
      if (all) { frame.mention_all = true; }
    }
    let files = null;
    if (withFiles) {  // the files of the tray, the text as their caption: one message
      const conv = this.conv;
      text.value = "";  // the caption goes with the files; typing may go on meanwhile
      this.autosize();
      this.waitingForFiles = true;  // a second Enter meanwhile must not send them twice
      try {
        files = await tray.ready();
      } catch (error) {
        tray.say(`${t("Not sent")}: ${error.message}`, true);
        if (!text.value) { text.value = content; }
        return;
      } finally {
        this.waitingForFiles = false;
      }
      if (conv !== this.conv || this.locked) { return; }  // left the conversation meanwhile
      frame.attachments = files.map((file) => file.id);
      tray.clear();
    }
    const replyTo = this.actions.replyShape();
    const item = this.outbox.add(this.conv.key, frame, files);
    item.replyTo = replyTo;
    this.outbox.save();
    this.actions.cancelMode();
    if (this.hasNewer) { this.reloadNewest(); } else { this.showOutgoing(item); }
    if (!withFiles) { text.value = ""; }
    this.counter.update();
    this.autosize();
    this.typingLine.sent();
    this.scrollToBottom();
  }

  // A typing frame: for the typing line.
  typing(frame) {
    this.typingLine.received(frame);
  }

  // We are no longer a member (removed, or the group was deleted): read-only, with the reason.
  // With `login`, the reason ends with a link to log in again (the session has ended).
  setLocked(locked, reason, login = false) {
    if (this.ended && !locked) { this.locked = true; return; }  // logged out: stays locked, whichever conversation opens
    this.ended = this.ended || login;
    this.locked = locked;
    const {form, text, send, hint} = this.dom;
    form.classList.toggle("disabled", locked);
    text.disabled = locked;
    send.disabled = locked;
    hint.replaceChildren(locked ? reason : this.hintText);
    if (locked && login) { hint.append(" ", el("a", {href: loginUrl(), text: t("Log in")})); }
    hint.classList.toggle("locked", locked);
  }

  // Grow the composer with its text (up to the CSS max-height), shrink it back when sent.
  autosize() {
    const {text} = this.dom;
    text.style.height = "auto";
    text.style.height = `${Math.min(text.scrollHeight + 2, 192)}px`;
  }

  // Whether the reader is at (or near) the newest message.
  nearBottom() {
    const {scroller} = this.dom;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM;
  }

  // Show the newest message.
  scrollToBottom() {
    const {scroller} = this.dom;
    scroller.scrollTop = scroller.scrollHeight;
    this.dom.jump.hidden = true;
  }

  // Scrolling: near the top fetch older messages; at the bottom hide "New messages" and mark read.
  scrolled() {
    const {scroller} = this.dom;
    if (scroller.scrollTop < LOAD_OLDER_AT && this.hasMore && !this.loading) { this.loadPage(this.oldestId); }
    if (this.nearBottom() && this.hasNewer && !this.loading) { this.loadNewer(); }
    if (this.nearBottom()) { this.dom.jump.hidden = true; }
    this.markReadSoon();  // what scrolled into sight is read now
  }
}
