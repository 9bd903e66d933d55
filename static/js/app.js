// The browser client's entry point (loaded on every page of a logged-in user). It wires one
// WebSocket to the conversation list, the open conversation, the outbox and the notice menu,
// keeps the connection banner and the tab title honest, and recovers after a reconnect:
// sync (type 7) from the largest message id seen, so nothing is missed and, as every view
// de-duplicates by id, nothing shows twice.

import {Socket, socketUrl} from "./net.js";
import {ConversationList, conversationAt, conversationKey, conversationUrl, messageKey} from "./conversations.js";
import {Thread} from "./thread.js";
import {Outbox} from "./outbox.js";
import {NoticeMenu} from "./notices.js";
import {Names} from "./names.js";
import {localiseTimes, t} from "./i18n.js";
import {badgeText, el} from "./dom.js";
import {Conversation, Frame, Kind, Notice} from "./protocol.js";
import {notePresence, startPresence} from "./presence.js";
import {Drafts} from "./drafts.js";
import {keepServiceWorker, notifyMessage} from "./notify.js";

const me = Number(document.body.dataset.me);
const myName = document.body.dataset.username;
const chatRoot = document.getElementById("chat");
const titleSuffix = document.title.includes(" · ") ? document.title.split(" · ").pop() : document.title;
let baseTitle = document.title;

let maxSeen = 0;          // the largest message id seen: the next sync starts after it
let greetedBefore = false; // a hello after the first one is a reconnect
let listLoaded = false;    // whether maxSeen could be taken from the conversation list

// The strip under the top bar that says when we are not connected, and what happens next.
class ConnectionBanner {
  constructor(node) {
    this.node = node;
    this.ticker = null;
  }

  // Show the socket's state: nothing when open, a countdown while offline, a login link when ended.
  show(state, socket) {
    clearInterval(this.ticker);
    const node = this.node;
    if (state === "open") {
      node.hidden = true;
      return;
    }
    if (state === "connecting") {
      if (node.hidden) { return; }  // the first connect is quiet; a retry keeps the offline text
      node.replaceChildren(t("You are offline. Reconnecting…"));
      return;
    }
    node.hidden = false;
    node.classList.add("offline");
    if (state === "ended") {
      node.replaceChildren(t("Your session has ended. Please log in again."), " ",
                           el("a", {href: `/login?next=${encodeURIComponent(location.pathname)}`, text: t("Log in")}));
      return;
    }
    const retry = el("button", {type: "button", class: "secondary", text: t("Reconnect now"),
                                onclick: () => socket.reconnectNow()});
    const label = el("span");
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
      label.textContent = seconds ? t("You are offline. Reconnecting in {s} s…", {s: seconds})
        : t("You are offline. Reconnecting…");
    };
    tick();
    this.ticker = setInterval(tick, 1000);
    node.replaceChildren(label, retry);
  }
}

const names = new Names(me, myName);
const banner = new ConnectionBanner(document.getElementById("conn"));
const socket = new Socket(socketUrl(), {onFrame: handleFrame, onState: connectionChanged});
startPresence();
const list = new ConversationList({listEl: chatRoot ? document.getElementById("conversations") : null,
                                   emptyEl: document.getElementById("conv-empty"), me, onChange: updateCounts});
const outbox = new Outbox(socket, (item) => thread && thread.outgoingChanged(item), me);
const thread = chatRoot ? new Thread({me, myName, socket, outbox, list, names}) : null;
const notices = new NoticeMenu();
const drafts = new Drafts(me);

start();

// Load what the page needs, open the conversation in the address, then connect.
async function start() {
  localiseTimes();
  wireConfirmations();
  wireAccountMenu();
  try {
    await list.load();
    listLoaded = true;
  } catch (error) {
    // The server-rendered list stays; the sync after hello brings in anything newer.
    maxSeen = Number(chatRoot?.dataset.lastId || 0);
  }
  maxSeen = Math.max(maxSeen, list.maxId());
  for (const conv of list.items.values()) {
    if (conv.kind === Conversation.PRIVATE) { names.remember(conv.id, conv.name); }
  }
  notices.load().catch(() => {});
  if (chatRoot) {
    wireNavigation();
    wireDrafts();
    if (chatRoot.dataset.kind) {
      const {kind, target, name} = chatRoot.dataset;
      const id = Number(target);
      openConversation({kind, id, name, key: conversationKey(kind, id)}, false);
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && thread) { thread.markRead(); }
  });
  window.addEventListener("focus", () => { if (thread) { thread.markRead(); } });
  window.addEventListener("chat:joined", () => list.refreshSoon());  // an invitation accepted
  socket.start();
  keepServiceWorker();
}

// The socket's state: in the banner, and on <html data-connection> (for styles and tests).
function connectionChanged(state) {
  document.documentElement.dataset.connection = state;
  banner.show(state, socket);
  if (state === "ended") {
    // Logged out (perhaps in another tab): say so where one types, and fail what waits.
    if (thread) { thread.setLocked(true, t("Your session has ended. Please log in again."), true); }
    outbox.endSession();
  }
}

// Route each server frame to the part of the page it concerns.
function handleFrame(frame) {
  switch (frame.kind) {
    case Kind.HELLO: return greeted(frame);
    case Kind.SYNC: return synced(frame);
    case Kind.MESSAGE: return receivedLive(frame);
    case Kind.UPDATE: return updated(frame);
    case Kind.ACK: return acknowledged(frame);
    case Kind.ERROR: return refused(frame);
    case Kind.READ: return readReceipt(frame);
    case Kind.TYPING: return thread && thread.typing(frame);
    case Kind.NOTICE: return noticed(frame);
    case "presence": return notePresence(frame);
    case Kind.CATCH_UP: return socket.send({type: Frame.SYNC, since_id: maxSeen});
    default: return undefined;  // pong, and kinds a newer server may add
  }
}

// Connected (or reconnected): ask for everything after the largest id we have seen.
function greeted(hello) {
  if (!listLoaded && !maxSeen) { maxSeen = hello.last_id; }  // no list to start from: from now on
  if (thread) { thread.forgetReadSent(); }
  socket.send({type: Frame.SYNC, since_id: maxSeen});
}

// A page of missed messages and updates (edits, take-backs, reactions); follow has_more
// from the largest id of either list, then resend what still waits for an ack.
function synced(frame) {
  for (const message of frame.messages) { received(message); }
  for (const update of frame.updates || []) { updated(update); }
  const ids = [...frame.messages, ...(frame.updates || [])].map((item) => item.id);
  if (frame.has_more && ids.length) {
    socket.send({type: Frame.SYNC, since_id: Math.max(...ids)});
    return;
  }
  outbox.resendPending();
  if (greetedBefore) {
    // Away for a while: read cursors may have moved on other devices; the server knows.
    list.load().then(() => thread && thread.markRead()).catch(() => {});
  } else if (thread) {
    thread.markRead();
  }
  greetedBefore = true;
}

// A stored message (live or from sync): into the open conversation if it belongs there,
// and into the list (preview, unread).
function received(message) {
  maxSeen = Math.max(maxSeen, message.id);
  if (message.sender_id !== me) { names.remember(message.sender_id, message.sender_name); }
  if (message.sender_id === me && message.client_id && outbox.has(message.client_id)) {
    outbox.settle(message.client_id);  // stored, though its ack was lost with the old socket
  }
  const key = messageKey(message, me);
  const reading = Boolean(thread && thread.isReading(key));
  if (thread && thread.accepts(message)) { thread.insert([message], {live: true}); }
  list.applyMessage(message, reading);
  if (reading) { thread.markReadSoon(); }
}

// A message as it happens (not from sync): as any, and a notification if the user is elsewhere;
// clicking it opens the conversation (in place on the chat page, else by loading it).
function receivedLive(message) {
  received(message);
  const group = message.group_id !== null && message.group_id !== undefined;
  const conv = list.get(messageKey(message, me))
    || {kind: group ? Conversation.GROUP : Conversation.PRIVATE, id: group ? message.group_id : message.sender_id,
        name: group ? "" : message.sender_name};
  notifyMessage(message, me, conv, () => {
    if (thread && conv.key) { openConversation(conv, true); } else { location.href = conversationUrl(conv); }
  }).catch(() => {});
}

// A message was edited, taken back or reacted to: redraw it, and the list's preview.
function updated(update) {
  maxSeen = Math.max(maxSeen, update.id);
  if (thread) { thread.applyUpdate(update); }
  list.applyUpdate(update);
}

// Our message is stored: the pending bubble turns to sent.
// (Its id is not taken as "seen" for sync: a message with a smaller id may still be on its way.)
function acknowledged(ack) {
  const item = outbox.settle(ack.client_id);
  if (!item) { return; }
  const isGroup = item.frame.type === Frame.GROUP_MESSAGE;
  const message = {kind: Kind.MESSAGE, id: ack.id, sender_id: me, sender_name: myName,
                   recipient_id: isGroup ? null : item.frame.recipient_id,
                   group_id: isGroup ? item.frame.recipient_id : null,
                   content: item.content, created_at: ack.created_at, client_id: item.cid,
                   reply_to: item.replyTo || null, mentions: item.frame.mentions || [],
                   mention_all: Boolean(item.frame.mention_all), attachments: item.files || [], edited_at: null,
                   recalled: false, reactions: []};
  if (thread && thread.accepts(message)) { thread.insert([message], {live: true}); }
  list.applyMessage(message, true);
}

// An error frame: about one of our messages (failed, offer Retry), or else only logged.
function refused(frame) {
  if (frame.ref !== undefined && outbox.fail(frame.ref, frame)) { return; }
  console.warn("chat:", frame.error, frame.content);
}

// Read receipts: ours from another device clear unread; the peer's turn on "Seen".
function readReceipt(frame) {
  if (frame.user_id === me) {
    const key = frame.group_id !== null ? conversationKey(Conversation.GROUP, frame.group_id)
      : conversationKey(Conversation.PRIVATE, frame.recipient_id);
    list.markRead(key, frame.last_read_id);
    return;
  }
  list.setPeerRead(conversationKey(Conversation.PRIVATE, frame.user_id), frame.last_read_id);
  if (thread) { thread.peerRead(frame); }
}

// A notice: into the menu; group changes also change the list (and may lock the open group).
function noticed(frame) {
  notices.add(frame);
  const key = conversationKey(Conversation.GROUP, frame.group_id);
  if (frame.notice === Notice.GROUP_ADDED) { list.refreshSoon(); }
  if (frame.notice === Notice.GROUP_REMOVED || frame.notice === Notice.GROUP_DELETED) {
    list.remove(key);
    if (thread && thread.conv && thread.conv.key === key) {
      thread.setLocked(true, t("You are no longer a member of this group."));
    }
  }
}

// The unread total: on the "Chats" tab of the top bar and in the window's title.
function updateCounts() {
  const total = list.totalUnread();
  const badge = document.getElementById("nav-unread");
  if (badge) {
    badge.hidden = total === 0;
    badge.textContent = badgeText(total);
    document.getElementById("nav-unread-text").textContent = total ? t("{n} unread", {n: total}) : "";
  }
  document.title = total ? `(${total}) ${baseTitle}` : baseTitle;
}

// The title without the count: the open conversation's name, or the page's own.
function setBaseTitle(name) {
  baseTitle = name ? `${name} · ${titleSuffix}` : `${t("Chats")} · ${titleSuffix}`;
  updateCounts();
}

// Open a conversation in place (no page load); `push` adds it to the browser history.
function openConversation(conv, push) {
  if (push) { history.pushState(null, "", conversationUrl(conv)); }
  list.setActive(conv.key, conv);
  setBaseTitle(conv.name);
  saveDraft();
  thread.open({kind: conv.kind, id: conv.id, name: conv.name});
  restoreDraft();
}

// Each conversation keeps its own draft: saved as it is typed, cleared once sent.
function wireDrafts() {
  const text = document.getElementById("text");
  text.addEventListener("input", () => saveDraft());
  const clearSent = () => setTimeout(() => { if (!text.value) { saveDraft(); } });
  text.addEventListener("keydown", (event) => { if (event.key === "Enter") { clearSent(); } });
  document.getElementById("composer").addEventListener("submit", clearSent);
}

// The open conversation's draft, from the composer (not while editing a sent message).
function saveDraft() {
  if (!thread.conv || thread.actions.editing) { return; }
  drafts.set(thread.conv.key, document.getElementById("text").value);
}

// Put the open conversation's draft in the composer (the previous one's text leaves with it).
function restoreDraft() {
  const text = document.getElementById("text");
  text.value = drafts.get(thread.conv.key);
  thread.counter.update();
  thread.autosize();
}

// Clicking a conversation opens it in place; Back / Forward follow; the phone's back arrow shows the list.
function wireNavigation() {
  const plainClick = (event) => event.button === 0 && !event.metaKey && !event.ctrlKey
    && !event.shiftKey && !event.altKey;
  document.getElementById("conversations").addEventListener("click", (event) => {
    const link = event.target.closest(".conv a");
    const conv = link && list.get(link.closest(".conv").dataset.key);
    if (!conv || !plainClick(event)) { return; }
    event.preventDefault();
    openConversation(conv, true);
  });
  document.getElementById("thread-back").addEventListener("click", (event) => {
    if (!plainClick(event)) { return; }
    event.preventDefault();
    history.pushState(null, "", "/");
    showListOnly();
  });
  window.addEventListener("popstate", () => routeFromAddress());
}

// No conversation open: the list (and on a wide screen the "pick a conversation" pane).
function showListOnly() {
  thread.close();
  list.setActive(null);
  setBaseTitle(null);
}

// Show what the address bar says (after Back or Forward).
async function routeFromAddress() {
  const wanted = conversationAt(location.pathname);
  if (!wanted) {
    showListOnly();
    return;
  }
  const conv = list.get(wanted.key);
  if (conv) {
    openConversation(conv, false);
  } else if (wanted.kind === Conversation.GROUP) {
    location.reload();  // a group we are not in (any more): the server page explains
  } else {
    openConversation({...wanted, name: await names.get(wanted.id)}, false);
  }
}

// The account menu (a <details>) closes on a click elsewhere or on Escape, like other menus.
function wireAccountMenu() {
  const menu = document.querySelector(".account-menu");
  if (!menu) { return; }
  document.addEventListener("click", (event) => {
    if (menu.open && !menu.contains(event.target)) { menu.open = false; }
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
}

// Forms marked data-confirm (delete, remove, block...) ask first, in an accessible <dialog>.
function wireConfirmations() {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog || typeof dialog.showModal !== "function") { return; }
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.dataset.confirm || form.dataset.confirmed) { return; }
    event.preventDefault();
    document.getElementById("confirm-text").textContent = form.dataset.confirm;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") { return; }
      form.dataset.confirmed = "1";
      form.requestSubmit(event.submitter);
      delete form.dataset.confirmed;
    }, {once: true});
    dialog.showModal();
  });
}
