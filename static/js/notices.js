// The notice menu in the top bar: follows and group changes, live, with their own unread count.

import {api} from "./net.js";
import {announce, avatar, badgeText, el} from "./dom.js";
import {formatFull, formatShort, t} from "./i18n.js";
import {conversationUrl} from "./conversations.js";
import {Conversation, Notice} from "./protocol.js";

const SHOWN = 20;  // notices kept in the menu (the Notices page has them all)

// The sentence for one notice, e.g. "alice added you to Lobby." (as on the Notices page:
// "someone" when the actor's account is gone and the notice carries no actor_name).
function noticeText(notice) {
  const name = notice.actor_name || t("someone");
  const group = notice.group_name || t("a group");
  switch (notice.notice) {
    case Notice.FOLLOW: return t("{name} followed you.", {name});
    case Notice.GROUP_ADDED: return t("{name} added you to {group}.", {name, group});
    case Notice.GROUP_REMOVED: return t("{name} removed you from {group}.", {name, group});
    case Notice.GROUP_DELETED: return t("{name} deleted the group {group}.", {name, group});
    case Notice.GROUP_INVITED: return t("{name} invited you to {group}.", {name, group});
    default: return notice.notice;
  }
}

// Where a notice leads: the follower's profile, or the chat of the group we were added to.
function noticeLink(notice) {
  if (notice.notice === Notice.FOLLOW && notice.actor_name) { return `/users/${notice.actor_id}`; }
  if (notice.notice === Notice.GROUP_ADDED && notice.group_id) {
    return conversationUrl({kind: Conversation.GROUP, id: notice.group_id});
  }
  if (notice.notice === Notice.GROUP_INVITED && notice.group_id) {
    return `/groups/${notice.group_id}`;  // where the invitation is joined or declined
  }
  return null;
}

// The bell, its badge and its drop-down list.
export class NoticeMenu {
  constructor() {
    const $ = (id) => document.getElementById(id);
    this.button = $("notice-button");
    this.panel = $("notice-panel");
    this.listEl = $("notice-list");
    this.countEl = $("notice-count");
    this.countText = $("notice-count-text");
    this.readAll = $("notice-read-all");
    this.notices = [];
    this.unread = 0;
    this.wire();
  }

  // The bell opens the menu (without JavaScript it is a plain link to the Notices page).
  wire() {
    this.button.addEventListener("click", (event) => {
      event.preventDefault();
      this.toggle(this.panel.hidden);
    });
    this.readAll.addEventListener("click", () => this.markAllRead(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.panel.hidden) {
        this.toggle(false);
        this.button.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!this.panel.hidden && !event.target.closest("#notice-menu")) { this.toggle(false); }
    });
  }

  // Fetch the newest notices and the unread count.
  async load() {
    const data = await api("GET", "/api/notices");
    this.notices = data.notices.slice(0, SHOWN);
    this.unread = data.unread;
    this.render();
  }

  // A live notice frame: first in the menu, one more unread, read out to screen readers.
  add(notice) {
    if (this.notices.some((n) => n.id === notice.id)) { return; }
    this.notices.unshift({...notice, read: false});
    this.notices.length = Math.min(this.notices.length, SHOWN);
    this.unread += 1;
    this.render();
    if (!this.panel.hidden) { this.markAllRead(true); }
    announce(noticeText(notice));
  }

  // Open or close the menu. Opening marks its notices read on the server; their highlight
  // stays until the menu closes, so the reader still sees which ones are new.
  toggle(open) {
    this.panel.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) {
      const heading = this.panel.querySelector("h2");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
      if (this.unread) { this.markAllRead(true); }
    } else if (this.notices.some((n) => !n.read) && !this.unread) {
      this.notices.forEach((n) => { n.read = true; });
      this.render();
    }
  }

  // POST /api/notices/read (with the CSRF header) up to the newest notice shown.
  async markAllRead(keepHighlight = false) {
    const newest = this.notices.length ? this.notices[0].id : undefined;
    try {
      await api("POST", "/api/notices/read", newest ? {up_to_id: newest} : {});
    } catch (error) {
      return;  // the badge stays: they can try again
    }
    this.unread = 0;
    if (!keepHighlight) { this.notices.forEach((n) => { n.read = true; }); }
    this.render();
  }

  // The badge on the bell.
  updateCount() {
    this.countEl.hidden = this.unread === 0;
    this.countEl.textContent = badgeText(this.unread);
    this.countText.textContent = this.unread ? t("{n} unread", {n: this.unread}) : "";
  }

  // Join and Decline under an invitation (PUT / DELETE /api/groups/<id>/members/<me>); once
  // answered, what was answered. Joining lists the group (app.js listens for the event).
  invitationActions(notice) {
    if (notice.answer) { return el("span", {class: "notice-answer", role: "status", text: notice.answer}); }
    const me = Number(document.body.dataset.me);
    const path = `/api/groups/${notice.group_id}/members/${me}`;
    const answer = async (method, done) => {
      try {
        await api(method, path);
        notice.answer = done;
        if (method === "PUT") { window.dispatchEvent(new CustomEvent("chat:joined", {detail: {groupId: notice.group_id}})); }
      } catch (error) {
        notice.answer = error.message;
      }
      this.render();
    };
    return el("span", {class: "notice-actions"},
      el("button", {type: "button", class: "small", text: t("Join"),
                    onclick: () => answer("PUT", t("You joined {group}.", {group: notice.group_name || t("a group")}))}),
      el("button", {type: "button", class: "secondary small", text: t("Decline"),
                    onclick: () => answer("DELETE", t("Invitation declined."))}));
  }

  // Draw the menu's list.
  render() {
    const items = this.notices.map((notice) => {
      const when = new Date(notice.created_at);
      const text = noticeText(notice);
      const href = noticeLink(notice);
      const body = el("span", {class: "notice-text"},
                      href ? el("a", {href, text}) : el("span", {text}),
                      el("time", {datetime: notice.created_at, title: formatFull(when), text: formatShort(when)}));
      if (notice.notice === Notice.GROUP_INVITED && notice.group_id) { body.append(this.invitationActions(notice)); }
      return el("li", {class: notice.read ? "" : "unread"}, avatar(notice.actor_id, notice.actor_name), body);
    });
    if (!items.length) { items.push(el("li", {class: "empty", text: t("No notices.")})); }
    this.listEl.replaceChildren(...items);
    this.updateCount();
  }
}
