// The parts of a rich message (docs/protocol.md 3.9): the text with its links and mentions,
// the quote of the message it answers, the "edited" mark, the line that replaces a message
// taken back, and the row of reactions. Every piece is built with DOM calls: user text only
// ever becomes text nodes or attribute values, never markup.

import {el} from "./dom.js";
import {formatFull, t} from "./i18n.js";

// A web address in the text: only http and https ever become links.
const URL_RE = /https?:\/\/[^\s<>"'`]+/gi;
// A mention as typed: @ and a username (letters, digits, _ . -).
const MENTION_RE = /@[A-Za-z0-9_.-]+/g;
// Punctuation that ends a sentence rather than an address or a name.
const TRAILING = /[.,;:!?)\]}'"-]+$/;

// The URL if `text` is an http(s) address a browser can open safely, else null.
export function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (error) {
    return null;
  }
}

// The first `limit` code points of the first line (a quote or a preview).
export function firstLine(text, limit = 100) {
  return [...(text || "").split("\n")[0]].slice(0, limit).join("");
}

// Find the links and mentions in `text`: [{start, end, kind, value}] in order.
function findSpans(text, mentionNames) {
  const spans = [];
  for (const match of text.matchAll(URL_RE)) {
    const raw = match[0].replace(TRAILING, "");
    const href = safeUrl(raw);
    if (href) { spans.push({start: match.index, end: match.index + raw.length, kind: "link", value: href}); }
  }
  if (mentionNames.size) {
    for (const match of text.matchAll(MENTION_RE)) {
      let name = match[0].slice(1);
      while (name && !mentionNames.has(name.toLowerCase()) && TRAILING.test(name)) { name = name.slice(0, -1); }
      if (!mentionNames.has(name.toLowerCase())) { continue; }
      const start = match.index;
      if (spans.some((s) => start < s.end && start + name.length + 1 > s.start)) { continue; }  // inside a link
      spans.push({start, end: start + name.length + 1, kind: "mention", value: name});
    }
  }
  return spans.sort((a, b) => a.start - b.start);
}

// The message's text as nodes: plain text, <a> for http(s) links (a new tab, no referrer,
// no opener, nofollow) and <mark class="mention"> for the names it mentions.
export function messageBody(text, mentionNames = new Set()) {
  const nodes = [];
  let at = 0;
  for (const span of findSpans(text, mentionNames)) {
    if (span.start < at) { continue; }
    if (span.start > at) { nodes.push(text.slice(at, span.start)); }
    const shown = text.slice(span.start, span.end);
    nodes.push(span.kind === "link"
      ? el("a", {href: span.value, target: "_blank", rel: "noopener noreferrer nofollow", text: shown})
      : el("mark", {class: "mention", text: shown}));
    at = span.end;
  }
  if (at < text.length) { nodes.push(text.slice(at)); }
  return el("span", {class: "msg-text"}, ...nodes);
}

// The quote above an answer: who wrote the original and its first line (or that it was
// taken back), with a small thumbnail when the original holds a picture. A button: clicking
// it shows the original.
export function replyQuote(reply, names, onClick, thumb = null) {
  const who = el("span", {class: "reply-sender"});
  names.get(reply.sender_id).then((name) => { who.textContent = name; });
  const excerpt = reply.recalled
    ? el("span", {class: "reply-excerpt recalled", text: t("message taken back")})
    : firstLine(reply.excerpt)
      ? el("span", {class: "reply-excerpt", text: firstLine(reply.excerpt)})
      // Only a message with files may have no text: say so rather than quote nothing.
      : el("span", {class: "reply-excerpt recalled", text: t("Attachment")});
  return el("button", {type: "button", class: "reply-quote", dataset: {replyId: reply.id},
                       title: t("Show the original message"), onclick: onClick},
            reply.recalled ? null : thumb, who, excerpt);
}

// The small "edited" mark, with the time of the edit as its tooltip.
export function editedMark(editedAt) {
  return el("span", {class: "msg-edited", title: formatFull(new Date(editedAt)), text: t("edited")});
}

// What a message taken back says instead of its text.
export function recalledText(mine, senderName) {
  return mine ? t("You took back a message") : t("{name} took back a message", {name: senderName});
}

// The reactions under a bubble: one button per emoji with its count; ours highlighted;
// the tooltip lists who reacted. `onToggle(emoji, on)` adds or removes ours.
export function reactionsRow(reactions, me, names, onToggle) {
  if (!reactions || !reactions.length) { return null; }
  const row = el("div", {class: "reactions"});
  for (const reaction of reactions) {
    const mine = reaction.user_ids.includes(me);
    const button = el("button", {type: "button", class: `reaction${mine ? " mine" : ""}`,
                                 "aria-pressed": mine ? "true" : "false", dataset: {emoji: reaction.emoji},
                                 onclick: () => onToggle(reaction.emoji, !mine)},
                      el("span", {class: "reaction-emoji", text: reaction.emoji}),
                      el("span", {class: "reaction-count", text: String(reaction.count)}));
    Promise.all(reaction.user_ids.map((id) => names.get(id))).then((who) => {
      button.title = `${reaction.emoji} ${who.join(", ")}`;
    });
    row.append(button);
  }
  return row;
}

// Apply an update (edit, take back, reaction) to the message object; false if it changes nothing.
export function changeMessage(message, update) {
  if (message.recalled) { return false; }
  if (update.update === "edit") {
    message.content = update.content;
    message.edited_at = update.edited_at;
  } else if (update.update === "recall") {
    Object.assign(message, {recalled: true, content: "", reactions: [], mentions: [], mention_all: false,
                            attachments: []});
  } else if (update.update === "reaction") {
    message.reactions = update.reactions;
  } else {
    return false;  // a kind a newer server may add
  }
  return true;
}
