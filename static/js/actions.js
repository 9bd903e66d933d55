// What one can do to a message: the per-message menu (a button shown on hover or focus, or
// a long press on a touch screen) with Reply, Edit, Take back and React; the bar over the
// composer that says what the next Send does (answer a message, or save an edit); and the
// page's line for a refused action. Changes go through the HTTP twins (PATCH / DELETE
// /api/messages/<id>, PUT / DELETE .../reactions/<emoji>); their `update` frames then reach
// every open page, this one included, and redraw the message.

import {api} from "./net.js";
import {el} from "./dom.js";
import {t} from "./i18n.js";
import {firstLine} from "./rich.js";
import {Conversation} from "./protocol.js";

// The emoji offered first in the menu; any other one can be typed.
export const COMMON_EMOJI = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
const LONG_PRESS = 500;      // ms a finger rests on a bubble to open its menu
const ERROR_SHOWN = 8000;    // ms a refused action's explanation stays

// The readable reason an action was refused (the API error's code), in the viewer's language.
function refusal(error) {
  switch (error.code) {
    case "forbidden": return t("You can no longer change this message.");
    case "not_found": return t("This message is no longer there.");
    case "conflict": return t("This message has too many different reactions.");
    case "bad_request": return t("That was not accepted: {reason}", {reason: error.message});
    case "rate_limited": return t("You are going too fast. Wait a moment and retry.");
    case "network": return t("No connection to the server. Retry in a moment.");
    default: return t("Something went wrong: {reason}", {reason: error.message});
  }
}

// The menu, the composer's mode (replying / editing) and the calls, for one Thread.
export class MessageActions {
  constructor(thread) {
    this.thread = thread;
    this.replyTo = null;   // the message the next Send answers
    this.editing = null;   // the message the next Send changes
    this.draft = "";       // what the composer held before an edit took it over
    this.menu = null;      // {node, anchor} of the open menu
    this.errorTimer = null;
    this.pressedAt = 0;    // when a long press opened the menu (its finger's click must not close it)
    const layout = document.getElementById("chat");
    // How long (s) the sender may still edit / take back a message (0: no limit).
    this.editWindow = Number(layout.dataset.editWindow) || 0;
    this.recallWindow = Number(layout.dataset.recallWindow) || 0;
    this.bar = document.getElementById("composer-bar");
    this.errorLine = document.getElementById("action-error");
    document.addEventListener("click", (event) => {
      if (!this.menu || this.menu.node.contains(event.target)) { return; }
      if (Date.now() - this.pressedAt < LONG_PRESS + 300) { return; }  // the long press's own click
      this.closeMenu();
    });
  }

  // Whether we may still edit this message (ours, not taken back, within the window).
  canEdit(message) {
    return message.sender_id === this.thread.me && !message.recalled && Boolean(message.id)
      && (!this.editWindow || Date.now() - new Date(message.created_at).getTime() < this.editWindow * 1000);
  }

  // Whether we may take this message back: ours within the window, or any in a group we own.
  canRecall(message) {
    const {me, conv, groupOwner} = this.thread;
    if (message.recalled) { return false; }
    if (conv.kind === Conversation.GROUP && groupOwner === me) { return true; }
    return message.sender_id === me
      && (!this.recallWindow || Date.now() - new Date(message.created_at).getTime() < this.recallWindow * 1000);
  }

  // A message was taken back: stop answering or editing it.
  forget(id) {
    if ((this.editing && this.editing.id === id) || (this.replyTo && this.replyTo.id === id)) { this.cancelMode(); }
  }

  // Give a stored message its menu button and its long press.
  attach(li, message) {
    const bubble = li.querySelector(".bubble");
    const button = el("button", {type: "button", class: "msg-more", "aria-haspopup": "menu",
                                 title: t("Message actions"), "aria-label": t("Message actions"), text: "⋯",
                                 onclick: (event) => { event.stopPropagation(); this.openMenu(li, message.id, button); }});
    bubble.append(button);
    let timer = null;
    let start = null;
    const stop = () => clearTimeout(timer);
    bubble.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "touch") { return; }
      start = {x: event.clientX, y: event.clientY};
      timer = setTimeout(() => {
        this.pressedAt = Date.now();
        this.openMenu(li, message.id, button);
      }, LONG_PRESS);
    });
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) { bubble.addEventListener(type, stop); }
    bubble.addEventListener("pointermove", (event) => {  // a scroll, not a press (a finger always trembles a little)
      if (start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > 10) { stop(); }
    });
    bubble.addEventListener("contextmenu", (event) => { if (timer !== null && this.menu) { event.preventDefault(); } });
  }

  // Open the menu of message `id` under its bubble.
  openMenu(li, id, anchor) {
    this.closeMenu();
    const thread = this.thread;
    const message = thread.messages.get(id);
    if (!message || message.recalled || thread.locked) { return; }
    const item = (label, action, cls = "") => el("button", {type: "button", role: "menuitem", class: `menu-item ${cls}`,
                                                            text: label, onclick: () => { this.closeMenu(); action(); }});
    const node = el("div", {class: "msg-menu", role: "menu", "aria-label": t("Message actions")});
    node.append(item(t("Reply"), () => this.startReply(message), "act-reply"));
    if (this.canEdit(message)) { node.append(item(t("Edit"), () => this.startEdit(message), "act-edit")); }
    if (this.canRecall(message)) { node.append(item(t("Take back"), () => this.recall(message.id), "act-recall")); }
    const picker = el("div", {class: "emoji-picker", role: "group", "aria-label": t("React")});
    for (const emoji of COMMON_EMOJI) {
      picker.append(el("button", {type: "button", class: "emoji", title: t("React with {emoji}", {emoji}), text: emoji,
                                  onclick: () => { this.closeMenu(); this.react(message.id, emoji, true); }}));
    }
    const other = el("input", {type: "text", class: "emoji-input", maxlength: 16, "aria-label": t("Another emoji"),
                               placeholder: t("Other emoji")});
    other.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.isComposing) { return; }
      event.preventDefault();
      const emoji = other.value.trim();
      if (emoji) { this.closeMenu(); this.react(message.id, emoji, true); }
    });
    picker.append(other);
    node.append(picker);
    node.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.closeMenu();
        anchor.focus();
      } else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && event.target.tagName === "BUTTON") {
        event.preventDefault();  // a menu's arrow keys move between its items
        const items = [...node.querySelectorAll("button")];
        const step = event.key === "ArrowDown" ? 1 : -1;
        items[(items.indexOf(event.target) + step + items.length) % items.length].focus();
      }
    });
    li.append(node);
    this.menu = {node, anchor};
    anchor.setAttribute("aria-expanded", "true");
    node.scrollIntoView({block: "nearest"});
    node.querySelector("button").focus({preventScroll: true});
  }

  // Close the open menu, if any.
  closeMenu() {
    if (this.menu) {
      this.menu.node.remove();
      this.menu.anchor.removeAttribute("aria-expanded");
    }
    this.menu = null;
  }

  // Answer `message` with the next Send: the bar over the composer says so.
  startReply(message) {
    this.endEdit();
    this.replyTo = message;
    this.showBar();
    this.thread.dom.text.focus();
  }

  // Change `message`: its text goes into the composer, Send saves it, Esc cancels.
  startEdit(message) {
    this.replyTo = null;
    const {text} = this.thread.dom;
    if (!this.editing) { this.draft = text.value; }  // a message being written comes back after the edit
    this.editing = message;
    text.value = message.content;
    this.thread.autosize();
    this.showBar();
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
  }

  // Up-arrow in an empty composer: edit our newest message that may still be changed.
  editLast() {
    const mine = [...this.thread.messages.values()].filter((m) => this.canEdit(m));
    if (!mine.length) { return false; }
    this.startEdit(mine.reduce((a, b) => (a.id > b.id ? a : b)));
    return true;
  }

  // Leave edit mode (the composer empties); the reply target is kept.
  endEdit() {
    if (!this.editing) { return; }
    this.editing = null;
    this.thread.dom.text.value = this.draft || "";
    this.draft = "";
    this.thread.autosize();
  }

  // Cancel what the bar says (Esc, the bar's ×, another conversation).
  cancelMode() {
    this.endEdit();
    this.replyTo = null;
    this.showBar();
  }

  // Whether Send does something other than send a new message.
  get active() {
    return Boolean(this.replyTo || this.editing);
  }

  // Draw the bar over the composer: "Replying to <name>: <first line>" or "Editing".
  showBar() {
    const bar = this.bar;
    if (!bar) { return; }
    bar.hidden = !this.active;
    if (!this.active) { bar.replaceChildren(); return; }
    const cancel = el("button", {type: "button", class: "bar-cancel", title: t("Cancel"), "aria-label": t("Cancel"),
                                 text: "×", onclick: () => { this.cancelMode(); this.thread.dom.text.focus(); }});
    if (this.editing) {
      bar.replaceChildren(el("span", {class: "bar-label", text: t("Editing your message")}),
                          el("span", {class: "bar-hint", text: t("Esc cancels")}), cancel);
      return;
    }
    const who = el("strong");
    const reply = this.replyTo;
    this.thread.names.get(reply.sender_id).then((name) => {
      who.textContent = t("Replying to {name}", {name});
    });
    bar.replaceChildren(el("span", {class: "bar-label"}, who, " ",
                           el("span", {class: "bar-excerpt", text: firstLine(reply.content, 80)})), cancel);
  }

  // The reply_to object a new message carries in the page until the server's copy arrives.
  replyShape() {
    const reply = this.replyTo;
    return reply ? {id: reply.id, sender_id: reply.sender_id, excerpt: [...reply.content].slice(0, 100).join(""),
                    recalled: false} : null;
  }

  // Save the edit in the composer.
  async submitEdit(content) {
    const message = this.editing;
    if (content === message.content) { this.cancelMode(); return; }
    try {
      const ack = await api("PATCH", `/api/messages/${message.id}`, {content});
      this.cancelMode();
      // The update frame follows; until then the page shows the edit already.
      this.thread.applyUpdate({update: "edit", message_id: message.id, content,
                               edited_at: message.edited_at || new Date().toISOString(), id: ack.id});
    } catch (error) {
      this.showError(refusal(error));
    }
  }

  // Take a message back.
  async recall(id) {
    try {
      await api("DELETE", `/api/messages/${id}`);
      this.thread.applyUpdate({update: "recall", message_id: id});
    } catch (error) {
      this.showError(refusal(error));
    }
  }

  // Add (on) or remove our reaction `emoji` to a message.
  async react(id, emoji, on) {
    try {
      await api(on ? "PUT" : "DELETE", `/api/messages/${id}/reactions/${encodeURIComponent(emoji)}`);
    } catch (error) {
      this.showError(refusal(error));
    }
  }

  // Say in the page why an action did not happen.
  showError(text) {
    const line = this.errorLine;
    if (!line) { return; }
    clearTimeout(this.errorTimer);
    line.textContent = text;
    line.hidden = false;
    this.errorTimer = setTimeout(() => { line.hidden = true; }, ERROR_SHOWN);
  }
}
