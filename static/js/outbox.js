// Messages we sent that the server has not acknowledged yet. Each keeps its client_id,
// so a resend (after a reconnect, a busy server, or the Retry button) can never store it twice.

import {backoff} from "./net.js";
import {ErrorName, Frame, errorName, retryOutlook} from "./protocol.js";
import {t} from "./i18n.js";

const ACK_WITHIN = 10000;  // ms an open socket has to acknowledge a message
const AUTO_RESENDS = 3;    // a busy server or a flood refusal: resent this often before it shows as failed

// A fresh client_id: random, so no other tab or device picks the same one.
function newClientId() {
  if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// The readable reason for an error frame about a message we sent, in the viewer's language.
// The error's name decides; the server's own (English) `content` is shown only as the
// reason of an error this client has no words of its own for.
function errorText(error, frame) {
  switch (errorName(error)) {
    case ErrorName.FORBIDDEN:
      return frame.type === Frame.GROUP_MESSAGE ? t("You are no longer a member of this group.")
        : t("You cannot message this user.");
    case ErrorName.STRANGER_LIMIT:
      return t("You can send 3 messages until they reply or you follow each other.");
    case ErrorName.RATE_LIMITED: return t("You are sending too fast. Wait a moment and retry.");
    case ErrorName.SERVER_BUSY: return t("The server is busy; nothing was stored. Retry in a moment.");
    case ErrorName.NOT_FOUND: return t("Not found.");
    default: return t("Something went wrong: {reason}", {reason: error.content || error.error});
  }
}

// The waiting messages by client_id, with their state ("pending" or "failed").
// Kept in localStorage (per user) until sent or discarded, so a reload loses nothing.
export class Outbox {
  constructor(socket, onChange, me = 0) {
    this.socket = socket;
    this.onChange = onChange;  // (item) after a state change: the thread redraws it
    // client_id -> {cid, key, frame, content, state, error, canRetry, sentAt, createdAt, resends, timer}
    this.items = new Map();
    this.storeKey = `chat.outbox.${me}`;
    this.restore();
    setInterval(() => this.expire(), 2000);
  }

  // The messages a previous page left waiting (pending ones are sent again after the sync).
  restore() {
    let saved = [];
    try { saved = JSON.parse(localStorage.getItem(this.storeKey) || "[]"); } catch (e) { /* unreadable: start empty */ }
    for (const s of Array.isArray(saved) ? saved : []) {
      if (!s || !s.cid || !s.frame) { continue; }
      this.items.set(s.cid, {cid: s.cid, key: s.key, frame: s.frame, content: s.content, state: s.state,
                             error: s.error, canRetry: s.canRetry !== false, replyTo: s.replyTo || null,
                             files: Array.isArray(s.files) ? s.files : [],
                             sentAt: 0, createdAt: new Date(s.createdAt), resends: 0, timer: null});
    }
  }

  // Write the waiting messages down (storage full or blocked: they live as long as the page).
  save() {
    const saved = [...this.items.values()].map((i) => ({
      cid: i.cid, key: i.key, frame: i.frame, content: i.content, state: i.state, error: i.error,
      canRetry: i.canRetry, replyTo: i.replyTo || null, files: i.files || [],
      createdAt: i.createdAt.getTime()}));
    try {
      if (saved.length) { localStorage.setItem(this.storeKey, JSON.stringify(saved)); } else { localStorage.removeItem(this.storeKey); }
    } catch (e) { /* private mode or full */ }
  }

  // Delete (or Edit, which takes the text back to the composer): forget a failed message,
  // exactly as a stored one is forgotten.
  discard(cid) {
    return this.settle(cid);
  }

  // Queue a new message for conversation `key` and send it if the socket is open (`files`:
  // the file objects of its attachments, to show while it waits).
  add(key, frame, files = null) {
    const cid = newClientId();
    const item = {cid, key, frame: {...frame, client_id: cid}, content: frame.content,
                  state: "pending", error: null, canRetry: true, sentAt: 0, createdAt: new Date(),
                  resends: 0, timer: null, files: files || []};
    this.items.set(cid, item);
    this.transmit(item);
    this.save();
    return item;
  }

  // Send (or send again) one message; while offline it just waits for the reconnect.
  transmit(item) {
    clearTimeout(item.timer);
    item.state = "pending";
    item.error = null;
    item.sentAt = this.socket.send(item.frame) ? Date.now() : 0;
  }

  // The Retry button: the same frame, the same client_id.
  retry(cid) {
    const item = this.items.get(cid);
    if (!item) { return; }
    item.resends = 0;
    this.transmit(item);
    this.save();
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
    if (!item) { return null; }
    clearTimeout(item.timer);
    this.items.delete(cid);
    this.save();
    return item;
  }

  // An error frame about one of ours. A busy server or a flood refusal: still pending, sent
  // again after a back-off (a few times). Anything else, or too many of those: failed, with
  // the reason, and Retry where a retry can ever succeed.
  fail(cid, error) {
    const item = this.items.get(cid);
    if (!item) { return false; }
    const outlook = retryOutlook(error);
    if (outlook === "soon" && item.resends < AUTO_RESENDS) {
      item.sentAt = 0;  // not waiting for an ack until it is sent again
      item.timer = setTimeout(() => this.transmit(item), backoff(item.resends));
      item.resends += 1;
      return true;
    }
    item.state = "failed";
    item.error = errorText(error, item.frame);
    item.canRetry = outlook !== "never";
    this.save();
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
        item.canRetry = true;
        this.save();
        this.onChange(item);
      }
    }
  }

  // Logged out (in another tab): nothing waiting can be sent from this page any more.
  endSession() {
    for (const item of this.items.values()) {
      if (item.state !== "pending") { continue; }
      clearTimeout(item.timer);
      item.state = "failed";
      item.error = t("Your session has ended. Please log in again.");
      item.canRetry = false;
      this.onChange(item);
    }
    this.save();
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
