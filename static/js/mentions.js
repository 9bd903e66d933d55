// Mentions in a group's composer: typing "@" offers the group's members (and "@all" to the
// owner, the only one the server lets mention everyone); arrow keys, Enter or Tab, or a
// click picks one. On Send, the names written as "@name" become the frame's `mentions`
// ids, and "@all" its `mention_all`.

import {el} from "./dom.js";
import {t} from "./i18n.js";

const SHOWN = 8;                                  // suggestions at most
const TYPING_NAME = /(^|\s)@([A-Za-z0-9_.-]*)$/;  // "@" and the start of a name, just before the caret
// What may not follow a whole mention: a name character, or a dot that goes on with one
// ("@bob" is not in "@bob.smith", but is in "@bob.").
const NAME_GOES_ON = "[A-Za-z0-9_-]|\\.[A-Za-z0-9_-]";

// "@name" in the text as a whole word (a following "." still ends it: end of a sentence).
function mentioned(text, name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9_.-])@${escaped}(?!${NAME_GOES_ON})`, "i").test(text);
}

// The suggestion list under one textarea.
export class MentionPicker {
  constructor(textarea, form) {
    this.text = textarea;
    this.members = [];     // [{id, username}] of the open group, ourselves left out
    this.allowAll = false; // the owner may write @all
    this.options = [];
    this.index = 0;
    this.box = el("ul", {class: "mention-list", id: "mention-list", role: "listbox",
                         "aria-label": t("People to mention")});
    this.box.hidden = true;
    form.prepend(this.box);
    textarea.setAttribute("aria-controls", "mention-list");
    textarea.addEventListener("input", () => this.update());
    textarea.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    // On the form, capturing: runs before the composer's own keys (Enter sends, Esc cancels).
    form.addEventListener("keydown", (event) => this.key(event), true);
  }

  // The open group's members (none outside a group) and whether we may mention everyone.
  setMembers(members, allowAll) {
    this.members = members;
    this.allowAll = allowAll;
    this.close();
  }

  // Whether the list is showing.
  get open() {
    return !this.box.hidden;
  }

  // Show the members whose names start with what follows the "@" being typed.
  update() {
    const before = this.text.value.slice(0, this.text.selectionStart);
    const match = this.members.length || this.allowAll ? before.match(TYPING_NAME) : null;
    if (!match) { this.close(); return; }
    const typed = match[2].toLowerCase();
    const names = this.members.map((m) => m.username).filter((name) => name.toLowerCase().startsWith(typed));
    if (this.allowAll && "all".startsWith(typed)) { names.unshift("all"); }
    this.options = names.slice(0, SHOWN);
    if (!this.options.length) { this.close(); return; }
    this.index = 0;
    this.render();
  }

  // Draw the suggestions, the chosen one marked.
  render() {
    this.box.replaceChildren(...this.options.map((name, i) => el("li", {
      role: "option", class: `mention-option${i === this.index ? " active" : ""}`, id: `mention-${i}`,
      "aria-selected": i === this.index ? "true" : "false",
      onmousedown: (event) => { event.preventDefault(); this.choose(name); },
    }, el("span", {text: `@${name}`}), name === "all" ? el("span", {class: "mention-note", text: t("everyone in the group")}) : null)));
    this.box.hidden = false;
    this.text.setAttribute("aria-activedescendant", `mention-${this.index}`);
  }

  // Hide the suggestions.
  close() {
    this.box.hidden = true;
    this.options = [];
    this.text.removeAttribute("aria-activedescendant");
  }

  // Keys while the list shows: move, pick, or close it.
  key(event) {
    if (!this.open || event.target !== this.text || event.isComposing) { return; }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.index = (this.index + step + this.options.length) % this.options.length;
      this.render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      this.choose(this.options[this.index]);
    } else if (event.key === "Escape") {
      this.close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
  }

  // Replace the "@..." being typed with the whole name and a space.
  choose(name) {
    const {text} = this;
    const caret = text.selectionStart;
    const before = text.value.slice(0, caret).replace(/@[A-Za-z0-9_.-]*$/, `@${name} `);
    text.value = before + text.value.slice(caret);
    text.setSelectionRange(before.length, before.length);
    this.close();
    text.focus();
  }

  // The mentions a text makes: {ids, all}.
  mentionsIn(content) {
    const ids = this.members.filter((m) => mentioned(content, m.username)).map((m) => m.id);
    return {ids, all: this.allowAll && mentioned(content, "all")};
  }
}
