// The composer's length limit: counted in code points, as the server counts CHAT_MAX_CONTENT
// (an emoji is one, not two UTF-16 units), shown as a counter near the limit and never cut.

import {el} from "./dom.js";
import {t} from "./i18n.js";

const SHOW_FROM = 0.9;  // the counter appears at 90 % of the limit

// The length of `text` as the server counts it (code points).
export function codePoints(text) {
  return Array.from(text).length;
}

// A counter "4,950 / 5,000" after the composer's textarea; red (and an alert) past the limit.
export class LengthCounter {
  constructor(textarea, limit) {
    this.text = textarea;
    this.limit = limit;
    textarea.removeAttribute("maxlength");  // the browser's maxlength counts UTF-16 units and cuts silently
    this.node = el("p", {class: "length-counter", id: "length-counter", "aria-live": "polite", hidden: true});
    textarea.form.append(this.node);
    textarea.addEventListener("input", () => this.update());
  }

  // Show the count near or past the limit; false when the text is too long to send.
  update() {
    if (!Number.isFinite(this.limit)) { return true; }
    const n = codePoints(this.text.value);
    const over = n > this.limit;
    this.node.hidden = n < this.limit * SHOW_FROM;
    this.node.classList.toggle("over", over);
    this.node.textContent = over
      ? t("{n} / {max}: too long by {extra}. Shorten it to send.", {n, max: this.limit, extra: n - this.limit})
      : t("{n} / {max}", {n, max: this.limit});
    return !over;
  }
}
