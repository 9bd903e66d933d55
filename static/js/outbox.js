// Messages we sent that the server has not acknowledged yet. Each keeps its client_id,
// so a resend (after a reconnect, or the Retry button) can never store it twice.

import {t} from "./i18n.js";

const ACK_WITHIN = 10000;  // ms an open socket has to acknowledge a message

// A fresh client_id: random, so no other tab or device picks the same one.
function newClientId() {
  if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// The readable reason for an error frame (PROTOCOL.md's error names), in the viewer's language.
export function errorText(frame) {
  switch (frame.error) {
    case "forbidden": return t("You cannot message this user.");
    case "stranger_limit": return t("You can send 3 messages until they reply or you follow each other.");
    case "rate_limited": return t("You are sending too fast. Wait a moment and retry.");
    case "server_busy": return t("The server is busy; nothing was stored. Retry in a moment.");
    case "not_found": return t("Not found.");
    case "bad_request":
      if (/longer than/.test(frame.content || "")) { return t("The message is too long."); }
      return t("Something went wrong: {reason}", {reason: frame.content || frame.error});
    default: return t("Something went wrong: {reason}", {reason: frame.content || frame.error});
  }
}

// The waiting messages by client_id, with their state ("pending" or "failed").
export class Outbox {
  constructor(socket, onChange) {
    this.socket = socket;
    this.onChange = onChange;  // (item) after a state change: the thread redraws it
    this.items = new Map();    // client_id -> {cid, key, frame, content, state, error, sentAt, createdAt}
    setInterval(() => this.expire(), 2000);
  }

  // Queue a new message for conversation `key` and send it if the socket is open.
  add(key, frame) {
    const cid = newClientId();
    const item = {cid, key, frame: {...frame, client_id: cid}, content: frame.content,
                  state: "pending", error: null, sentAt: 0, createdAt: new Date()};
    this.items.set(cid, item);
    this.transmit(item);
    return item;
  }

  // Send (or send again) one message; while offline it just waits for the reconnect.
  transmit(item) {
    item.state = "pending";
    item.error = null;
    item.sentAt = this.socket.send(item.frame) ? Date.now() : 0;
  }

  // The Retry button: the same frame, the same client_id.
  retry(cid) {
    const item = this.items.get(cid);
    if (!item) { return; }
    this.transmit(item);
    this.onChange(item);
  }

  // After a reconnect (and its sync): send again whatever is still waiting for an ack.
  resendPending() {
    for (const item of this.items.values()) {
      if (item.state === "pending") { this.transmit(item); }
    }
  }

  // The server stored it (an ack, or our own message seen in a sync): forget it, hand it back.
  settle(cid) {
    const item = this.items.get(cid);
    if (item) { this.items.delete(cid); }
    return item || null;
  }

  // An error frame about one of ours: show it as failed with the reason, offer Retry.
  fail(cid, frame) {
    const item = this.items.get(cid);
    if (!item) { return false; }
    item.state = "failed";
    item.error = errorText(frame);
    this.onChange(item);
    return true;
  }

  // Messages sent on an open socket that got no answer in time are failed (Retry is safe).
  expire() {
    if (!this.socket.isOpen) { return; }  // offline: they wait for the reconnect instead
    const now = Date.now();
    for (const item of this.items.values()) {
      if (item.state === "pending" && item.sentAt && now - item.sentAt > ACK_WITHIN) {
        item.state = "failed";
        item.error = t("No answer from the server. Check your connection and retry.");
        this.onChange(item);
      }
    }
  }

  // The waiting messages of one conversation, oldest first.
  forConversation(key) {
    return [...this.items.values()].filter((item) => item.key === key);
  }

  // Whether this client_id is one of ours still waiting.
  has(cid) {
    return this.items.has(cid);
  }
}
