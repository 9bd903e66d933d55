// A conversation's menu in the list (the ⋯ button on its row): Pin / Unpin, Mute / Unmute,
// Archive / Unarchive, saved with PATCH /api/conversations/<kind>/<id> (docs/protocol.md, Attention). The
// list redraws from what the server answers: pinned on top, muted greyed and out of the
// tab's count (mentions still count), archived in the Archived folder.

import {api} from "./net.js";
import {el} from "./dom.js";
import {t} from "./i18n.js";

export class ConversationMenu {
  constructor(list) {
    this.list = list;
    this.openFor = null;  // {conv, button, menu}
    document.addEventListener("click", (event) => {
      if (this.openFor && !event.target.closest(".conv-menu, .conv-more")) { this.close(); }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.openFor) {
        const {button} = this.openFor;
        this.close();
        button.focus();
      }
    });
  }

  // The ⋯ button of one row.
  button(conv) {
    return el("button", {type: "button", class: "conv-more", "aria-haspopup": "menu", "aria-expanded": "false",
                         "aria-label": t("Options for {name}", {name: conv.name}), title: t("Options"), text: "⋯",
                         onclick: (event) => { event.preventDefault(); event.stopPropagation(); this.toggle(conv, event.currentTarget); }});
  }

  toggle(conv, button) {
    const same = this.openFor && this.openFor.conv.key === conv.key;
    this.close();
    if (!same) { this.open(conv, button); }
  }

  open(conv, button) {
    const item = (text, change) => el("li", {role: "none"},
      el("button", {type: "button", role: "menuitem", text, onclick: () => this.apply(conv, change)}));
    const menu = el("ul", {class: "conv-menu", role: "menu", "aria-label": t("Options for {name}", {name: conv.name})},
      item(conv.pinned ? t("Unpin") : t("Pin to top"), {pinned: !conv.pinned}),
      item(conv.muted ? t("Unmute") : t("Mute"), {muted: !conv.muted}),
      item(conv.archived ? t("Unarchive") : t("Archive"), {archived: !conv.archived}));
    button.after(menu);
    button.setAttribute("aria-expanded", "true");
    this.openFor = {conv, button, menu};
    menu.querySelector("button").focus();
    menu.addEventListener("keydown", (event) => {
      const items = [...menu.querySelectorAll("button")];
      const at = items.indexOf(document.activeElement);
      if (event.key === "ArrowDown") { event.preventDefault(); items[(at + 1) % items.length].focus(); }
      if (event.key === "ArrowUp") { event.preventDefault(); items[(at - 1 + items.length) % items.length].focus(); }
    });
  }

  close() {
    if (!this.openFor) { return; }
    this.openFor.menu.remove();
    this.openFor.button.setAttribute("aria-expanded", "false");
    this.openFor = null;
  }

  // Save one change; the list takes the server's answer (the conversation as it is now).
  async apply(conv, change) {
    this.close();
    try {
      const answer = await api("PATCH", `/api/conversations/${conv.kind}/${conv.id}`, change);
      this.list.changed(conv.key, answer);
    } catch (error) {
      this.list.say(error.message);
    }
  }
}
