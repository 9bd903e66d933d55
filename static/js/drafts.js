// Drafts: what was typed in each conversation's composer and not sent, kept in localStorage
// (per user) so that switching conversations or reloading the page loses nothing.

const PREFIX = "chat.draft";

// The drafts of one user, by conversation key ("private:7", "group:3").
export class Drafts {
  constructor(me) {
    this.prefix = `${PREFIX}.${me}.`;
  }

  // The draft of a conversation ("" if none).
  get(key) {
    try { return localStorage.getItem(this.prefix + key) || ""; } catch (e) { return ""; }
  }

  // Keep (or, when empty, forget) the draft of a conversation.
  set(key, text) {
    try {
      if (text.trim()) { localStorage.setItem(this.prefix + key, text); } else { localStorage.removeItem(this.prefix + key); }
    } catch (e) { /* private mode or full: the draft lives as long as the page */ }
  }
}
