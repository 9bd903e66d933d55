// "… is typing": our own typing frames (at most one every few seconds, never to ourselves)
// and the line under the messages that says who else is typing in the open conversation.

import {t} from "./i18n.js";
import {Conversation, Frame} from "./protocol.js";

const TYPING_EVERY = 3000;   // ms between our own typing frames
const TYPING_SHOWN = 5000;   // ms one typing frame keeps the indicator on

// The typing line of one Thread; `current()` is the open conversation (or null).
export class TypingIndicator {
  constructor({me, socket, names, node, current}) {
    this.me = me;
    this.socket = socket;
    this.names = names;
    this.node = node;
    this.current = current;
    this.generation = 0;
    this.typers = new Map();   // user id -> timer that hides their "typing…"
    this.lastSent = 0;
  }

  // Another conversation (or none): forget who was typing.
  reset() {
    this.generation += 1;
    for (const timer of this.typers.values()) { clearTimeout(timer); }
    this.typers = new Map();
    this.node.textContent = "";
  }

  // Our message went out: the next keystroke may say "typing" again at once.
  sent() {
    this.lastSent = 0;
  }

  // Let the others know we are typing `text` (at most one frame every few seconds).
  send(text, locked) {
    const conv = this.current();
    if (!conv || locked || !text.trim()) { return; }
    if (conv.kind === Conversation.PRIVATE && conv.id === this.me) { return; }
    const now = Date.now();
    if (now - this.lastSent < TYPING_EVERY) { return; }
    if (this.socket.send({type: Frame.TYPING, recipient_id: conv.id, group: conv.kind === Conversation.GROUP})) {
      this.lastSent = now;
    }
  }

  // Someone is typing: show it for a few seconds (several people in a group are listed).
  received(frame) {
    const conv = this.current();
    if (!conv || frame.user_id === this.me) { return; }
    const here = conv.kind === Conversation.GROUP ? frame.group_id === conv.id
      : frame.group_id === null && frame.user_id === conv.id;
    if (!here) { return; }
    clearTimeout(this.typers.get(frame.user_id));
    this.typers.set(frame.user_id, setTimeout(() => this.stop(frame.user_id), TYPING_SHOWN));
    this.show();
  }

  // Hide one person's "typing…" (timed out, or their message arrived).
  stop(userId) {
    if (!this.typers.has(userId)) { return; }
    clearTimeout(this.typers.get(userId));
    this.typers.delete(userId);
    this.show();
  }

  // Write the typing line from the current typers' names.
  async show() {
    const generation = this.generation;
    const ids = [...this.typers.keys()];
    const names = await Promise.all(ids.map((id) => this.names.get(id)));
    if (generation !== this.generation || ids.join() !== [...this.typers.keys()].join()) { return; }
    this.node.textContent = !names.length ? ""
      : names.length === 1 ? t("{name} is typing…", {name: names[0]})
        : t("{names} are typing…", {names: names.join(", ")});
  }
}
