// Presence in the conversation list: a green dot on the avatar of each friend (mutual follow)
// who is online. Fed by the socket's `presence` frames, and on page load by the profiles of
// the private chats listed (the server answers `online` only between friends who show it).
// The list re-renders often, so the dots are re-applied whenever it changes.

import {conversationKey} from "./conversations.js";

const online = new Map();  // user id -> true / false, as last heard
const PRIVATE = "private";

function dot() {
  const span = document.createElement("span");
  span.className = "presence-dot";
  // Set through the CSSOM (allowed by the page's CSP, unlike a style attribute).
  Object.assign(span.style, {position: "absolute", right: "0", bottom: "0", width: ".6rem",
                             height: ".6rem", borderRadius: "50%", background: "#2ea043",
                             border: "2px solid #fff"});
  span.setAttribute("aria-hidden", "true");
  return span;
}

function paint(root) {
  for (const [userId, isOnline] of online) {
    const item = root.querySelector(`li[data-key="${conversationKey(PRIVATE, userId)}"]`);
    const avatar = item && item.querySelector(".avatar");
    if (!avatar) { continue; }
    const existing = avatar.querySelector(".presence-dot");
    if (isOnline && !existing) {
      if (!avatar.style.position) { avatar.style.position = "relative"; }
      avatar.append(dot());
    } else if (!isOnline && existing) {
      existing.remove();
    }
  }
}

function listRoot() {
  const first = document.querySelector("li.conv");
  return first ? first.parentElement : null;
}

// A `presence` frame from the socket.
export function notePresence(frame) {
  online.set(frame.user_id, frame.online === true);
  const root = listRoot();
  if (root) { paint(root); }
}

// Start: ask the profiles of the listed private chats once, then keep the dots painted.
export function startPresence() {
  let asked = false;
  const observer = new MutationObserver(() => {
    const root = listRoot();
    if (!root) { return; }
    paint(root);
    if (asked) { return; }
    asked = true;
    const ids = [...root.querySelectorAll("li.conv")]
      .map((li) => li.dataset.key || "")
      .filter((key) => key.startsWith(conversationKey(PRIVATE, "")))
      .map((key) => Number(key.slice(conversationKey(PRIVATE, "").length)))
      .filter((id) => id > 0)
      .slice(0, 30);
    for (const id of ids) {
      fetch(`/api/users/${id}`, {credentials: "same-origin"})
        .then((r) => (r.ok ? r.json() : null))
        .then((profile) => {
          if (profile && profile.online !== null && !online.has(id)) {
            notePresence({user_id: id, online: profile.online});
          }
        })
        .catch(() => {});
    }
  });
  observer.observe(document.body, {childList: true, subtree: true});
}
