// The open conversation: history that loads as you scroll up, live messages in id order,
// the composer (Enter sends, Shift+Enter breaks the line), pending / sent / failed states,
// the typing indicator, "Seen", and day separators in the viewer's time zone.

import {api} from "./net.js";
import {announce, avatar, el} from "./dom.js";
import {conversationKey, messageKey} from "./conversations.js";
import {dayKey, formatDay, formatFull, formatTime, t} from "./i18n.js";
import {Conversation, Frame} from "./protocol.js";
import {attachmentsView} from "./uploads.js";

const PAGE = 30;                   // messages per history page
const GROUP_GAP = 5 * 60 * 1000;   // same sender within 5 minutes: drawn as one run
const NEAR_BOTTOM = 120;           // px from the end that still count as "at the bottom"
const LOAD_OLDER_AT = 150;         // px from the top where the next older page is fetched
const TYPING_EVERY = 3000;         // ms between our own typing frames
const TYPING_SHOWN = 5000;         // ms one typing frame keeps the indicator on

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
    this.conv = null;
    this.generation = 0;
    this.lastTypingSent = 0;
    this.reset();
    this.wire();
  }

  // Forget everything about the previous conversation.
  reset() {
    this.generation += 1;
    this.byId = new Map();     // message id -> <li>
    this.byCid = new Map();    // client_id -> <li> of a message still waiting for its ack
    this.oldestId = null;
    this.newestId = 0;
    this.hasMore = false;
    this.loading = false;
    this.readSent = 0;
    this.peerLastRead = 0;
    this.locked = false;
    for (const timer of (this.typers || new Map()).values()) { clearTimeout(timer); }
    this.typers = new Map();   // user id -> timer that hides their "typing…"
  }

  // Hook up the composer, the scroller and the buttons.
  wire() {
    const {form, text, scroller, older, jump} = this.dom;
    form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    text.addEventListener("keydown", (event) => {
      // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition
      // (Chinese input) must not send half-typed text.
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) { return; }
      event.preventDefault();
      this.submit();
    });
    text.addEventListener("input", () => {
      text.setCustomValidity("");
      this.autosize();
      this.sendTyping();
    });
    scroller.addEventListener("scroll", () => this.scrolled(), {passive: true});
    older.addEventListener("click", () => this.loadPage(this.oldestId));
    jump.addEventListener("click", () => { this.scrollToBottom(); this.dom.text.focus(); });
  }

  // Open a conversation ({kind, id, name}): header, waiting messages, newest history page.
  async open(conv) {
    this.reset();
    this.conv = {...conv, key: conversationKey(conv.kind, conv.id)};
    this.showHeader();
    this.dom.messages.replaceChildren();
    this.dom.typing.textContent = "";
    this.dom.jump.hidden = true;
    this.dom.older.hidden = true;
    this.dom.note.hidden = true;
    this.setLocked(false, "");
    this.dom.section.hidden = false;
    this.dom.empty.hidden = true;
    this.dom.layout.classList.add("has-thread");
    const known = this.list.get(this.conv.key);
    this.peerLastRead = known ? known.peerLastRead : 0;
    for (const item of this.outbox.forConversation(this.conv.key)) { this.showOutgoing(item); }
    if (window.matchMedia("(pointer: fine)").matches) { this.dom.text.focus(); }
    await this.loadPage(null);
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
      }).catch(() => {});
    }
  }

  // The API path of a history page (the newest one, or the one before `before`).
  historyPath(before) {
    const {kind, id} = this.conv;
    const base = kind === Conversation.GROUP ? `/api/groups/${id}/messages` : `/api/messages/${id}`;
    return `${base}?limit=${PAGE}${before ? `&before_id=${before}` : ""}`;
  }

  // Fetch one page of history and put it in place, keeping the reader's scroll position.
  async loadPage(before) {
    if (this.loading || !this.conv) { return; }
    this.loading = true;
    const generation = this.generation;
    const {scroller, note} = this.dom;
    note.textContent = t("Loading…");
    note.hidden = false;
    try {
      const page = await api("GET", this.historyPath(before));
      if (generation !== this.generation) { return; }
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      this.hasMore = page.has_more;
      this.insert(page.messages);
      if (before) { scroller.scrollTop = scroller.scrollHeight - fromBottom; } else { this.scrollToBottom(); }
      this.updateHistoryTop();
      this.markRead();
    } catch (error) {
      if (generation !== this.generation) { return; }
      note.textContent = t("Could not load the conversation.");
      this.dom.older.hidden = false;
    } finally {
      if (generation === this.generation) { this.loading = false; }
    }
    // A short page may not fill the pane (no scrolling, so no scroll event): fetch on.
    if (generation === this.generation && this.hasMore && scroller.scrollHeight <= scroller.clientHeight) {
      this.loadPage(this.oldestId);
    }
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
        this.stopTyping(message.sender_id);
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

  // A stored message as an <li>.
  renderMessage(message) {
    const mine = message.sender_id === this.me;
    const when = new Date(message.created_at);
    const li = el("li", {class: `msg${mine ? " mine" : ""}`,
                         dataset: {id: message.id, sender: message.sender_id, at: when.getTime()}});
    this.fill(li, {mine, sender: mine ? this.myName : message.sender_name, content: message.content,
                   when, state: mine ? "sent" : null});
    const files = attachmentsView(message.attachments);
    if (files) { li.querySelector(".bubble .msg-text").after(files); }
    return li;
  }

  // One of our messages still in the outbox (pending or failed), drawn at the end of the list.
  showOutgoing(item) {
    const li = el("li", {class: `msg mine ${item.state}`,
                         dataset: {cid: item.cid, sender: this.me, at: item.createdAt.getTime()}});
    this.fill(li, {mine: true, sender: this.myName, content: item.content, when: item.createdAt,
                   state: item.state, error: item.error, cid: item.canRetry ? item.cid : null});
    const old = this.byCid.get(item.cid);
    if (old) { old.replaceWith(li); } else { this.dom.messages.append(li); }
    this.byCid.set(item.cid, li);
    this.decorate();
  }

  // The outbox changed an item (failed, retried): redraw it if it is in this conversation.
  outgoingChanged(item) {
    if (this.conv && item.key === this.conv.key && this.byCid.has(item.cid)) { this.showOutgoing(item); }
  }

  // The inside of a message <li>: sender (groups), bubble with text, time and state, and for a
  // failed one the reason, with Retry when given the client_id to retry.
  fill(li, {mine, sender, content, when, state, error, cid}) {
    if (this.conv.kind === Conversation.GROUP && !mine) {
      li.append(el("span", {class: "msg-sender", "aria-hidden": "true", text: sender}));
    }
    const meta = el("span", {class: "msg-meta"},
                    el("time", {datetime: when.toISOString(), title: formatFull(when), text: formatTime(when)}));
    if (state) { meta.append(stateMark(state)); }
    li.append(el("div", {class: "bubble"},
                 el("span", {class: "visually-hidden", text: `${mine ? t("You") : sender}: `}),
                 el("span", {class: "msg-text", text: content}), meta));
    if (state === "failed") {
      li.append(el("div", {class: "msg-error", role: "alert"},
                   el("span", {text: `${t("Not sent")}: ${error}`}),
                   cid && el("button", {type: "button", class: "secondary small retry", text: t("Retry"),
                                        onclick: () => this.outbox.retry(cid)})));
    }
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
  markRead() {
    if (!this.isReading(this.conv?.key) || !this.newestId) { return; }
    if (this.newestId > this.readSent && this.socket.send({type: Frame.MARK_READ, recipient_id: this.conv.id,
                                                           group: this.conv.kind === Conversation.GROUP,
                                                           last_read_id: this.newestId})) {
      this.readSent = this.newestId;
    }
    this.list.markRead(this.conv.key, this.newestId);
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
  submit() {
    const {text} = this.dom;
    const content = text.value;
    if (!this.conv || this.locked || !content.trim()) { return; }
    if ([...content].length > this.maxContent) {  // the server would refuse it: keep it here to shorten
      text.setCustomValidity(t("The message is too long."));
      text.reportValidity();
      return;
    }
    const isGroup = this.conv.kind === Conversation.GROUP;
    const frame = {type: isGroup ? Frame.GROUP_MESSAGE : Frame.PRIVATE_MESSAGE, recipient_id: this.conv.id, content};
    const item = this.outbox.add(this.conv.key, frame);
    this.showOutgoing(item);
    text.value = "";
    this.autosize();
    this.lastTypingSent = 0;
    this.scrollToBottom();
  }

  // Let the others know we are typing (at most one frame every few seconds).
  sendTyping() {
    if (!this.conv || this.locked || !this.dom.text.value.trim()) { return; }
    if (this.conv.kind === Conversation.PRIVATE && this.conv.id === this.me) { return; }
    const now = Date.now();
    if (now - this.lastTypingSent < TYPING_EVERY) { return; }
    if (this.socket.send({type: Frame.TYPING, recipient_id: this.conv.id,
                          group: this.conv.kind === Conversation.GROUP})) {
      this.lastTypingSent = now;
    }
  }

  // Someone is typing: show it for a few seconds (several people in a group are listed).
  typing(frame) {
    if (!this.conv || frame.user_id === this.me) { return; }
    const here = this.conv.kind === Conversation.GROUP ? frame.group_id === this.conv.id
      : frame.group_id === null && frame.user_id === this.conv.id;
    if (!here) { return; }
    clearTimeout(this.typers.get(frame.user_id));
    this.typers.set(frame.user_id, setTimeout(() => this.stopTyping(frame.user_id), TYPING_SHOWN));
    this.showTyping();
  }

  // Hide one person's "typing…" (timed out, or their message arrived).
  stopTyping(userId) {
    if (!this.typers.has(userId)) { return; }
    clearTimeout(this.typers.get(userId));
    this.typers.delete(userId);
    this.showTyping();
  }

  // Write the typing line from the current typers' names.
  async showTyping() {
    const generation = this.generation;
    const ids = [...this.typers.keys()];
    const names = await Promise.all(ids.map((id) => this.names.get(id)));
    if (generation !== this.generation || ids.join() !== [...this.typers.keys()].join()) { return; }
    this.dom.typing.textContent = !names.length ? ""
      : names.length === 1 ? t("{name} is typing…", {name: names[0]})
        : t("{names} are typing…", {names: names.join(", ")});
  }

  // We are no longer a member (removed, or the group was deleted): read-only, with the reason.
  setLocked(locked, reason) {
    this.locked = locked;
    const {form, text, send, hint} = this.dom;
    form.classList.toggle("disabled", locked);
    text.disabled = locked;
    send.disabled = locked;
    hint.textContent = locked ? reason : this.hintText;
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
    if (this.nearBottom()) {
      this.dom.jump.hidden = true;
      this.markRead();
    }
  }
}
