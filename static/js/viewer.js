// The picture viewer: a click on a thumbnail opens the picture full size over the page;
// Left and Right go through the pictures of the same list (the conversation, or the search
// results), Esc or the close button closes it and gives the focus back to the thumbnail;
// Download saves the picture. With a modifier key (open in a new tab) the browser does as
// it would with any link.

import {el} from "./dom.js";
import {t} from "./i18n.js";

class Viewer {
  constructor() {
    this.links = [];
    this.index = 0;
    this.opener = null;
    this.image = el("img", {class: "viewer-image", alt: ""});
    this.caption = el("p", {class: "viewer-caption"});
    this.count = el("span", {class: "viewer-count"});
    this.download = el("a", {class: "viewer-download button secondary small", text: t("Download")});
    this.closeButton = el("button", {type: "button", class: "viewer-close", text: "✕",
                                     "aria-label": t("Close"), title: t("Close"),
                                     onclick: () => this.close()});
    this.prev = el("button", {type: "button", class: "viewer-prev", text: "‹",
                              "aria-label": t("Previous picture"), title: t("Previous picture"),
                              onclick: () => this.step(-1)});
    this.next = el("button", {type: "button", class: "viewer-next", text: "›",
                              "aria-label": t("Next picture"), title: t("Next picture"),
                              onclick: () => this.step(1)});
    this.root = el("div", {class: "viewer", id: "viewer", role: "dialog", "aria-modal": "true",
                           "aria-label": t("Picture"), hidden: true},
      el("div", {class: "viewer-bar"}, this.count, this.caption, this.download, this.closeButton),
      this.prev, el("div", {class: "viewer-stage"}, this.image), this.next);
    // A click on the dark backdrop (not on the picture or a control) closes.
    this.root.addEventListener("click", (event) => {
      if (event.target === this.root || event.target.classList.contains("viewer-stage")) { this.close(); }
    });
    this.root.addEventListener("keydown", (event) => this.key(event));
    document.body.append(this.root);
  }

  // Open at `link` (an .attachment-image), among the pictures of its list.
  open(link) {
    const scope = link.closest("#messages, .search-results, ol, ul") || document;
    this.links = [...scope.querySelectorAll("a.attachment-image")];
    this.index = Math.max(0, this.links.indexOf(link));
    this.opener = link;
    this.root.hidden = false;
    document.body.classList.add("viewer-open");
    this.show();
    this.closeButton.focus();
  }

  show() {
    const link = this.links[this.index];
    const name = link.dataset.name || "";
    this.image.src = link.href;
    this.image.alt = name;
    this.caption.textContent = name;
    this.download.href = link.href;
    this.download.setAttribute("download", name);
    this.count.textContent = t("{index} of {count}", {index: this.index + 1, count: this.links.length});
    this.prev.disabled = this.index === 0;
    this.next.disabled = this.index === this.links.length - 1;
  }

  step(by) {
    const to = this.index + by;
    if (to < 0 || to >= this.links.length) { return; }
    this.index = to;
    this.show();
  }

  close() {
    if (this.root.hidden) { return; }
    this.root.hidden = true;
    this.image.removeAttribute("src");
    document.body.classList.remove("viewer-open");
    if (this.opener?.isConnected) { this.opener.focus(); }
  }

  key(event) {
    if (event.key === "Escape") { event.preventDefault(); this.close(); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); this.step(-1); }
    else if (event.key === "ArrowRight") { event.preventDefault(); this.step(1); }
    else if (event.key === "Tab") {  // the focus stays in the dialog
      const stops = [...this.root.querySelectorAll("button:not([disabled]), a[href]")];
      const at = stops.indexOf(document.activeElement);
      const to = (at + (event.shiftKey ? -1 : 1) + stops.length) % stops.length;
      event.preventDefault();
      stops[to]?.focus();
    }
  }
}

let viewer = null;

document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a.attachment-image");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) { return; }
  event.preventDefault();
  viewer = viewer || new Viewer();
  viewer.open(link);
});
