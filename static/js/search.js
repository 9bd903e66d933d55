// Search over every conversation (GET /api/search), in a panel over the conversation list.
// Ctrl+K or "/" focuses the box; results are newest first with the matches marked; more
// load as the list scrolls; a result opens its conversation at that message (thread.js
// reads the address's #message-<id> and loads the history around it). The conversation
// header's "Search in this conversation" keeps the search to the open one. User text only
// ever goes in through text nodes (dom.js's el), never as HTML.
import {conversationAt} from "./conversations.js";
import {el} from "./dom.js";
import {formatShort, t} from "./i18n.js";
import {magnifier} from "./icons.js";
import {api} from "./net.js";
import {smallThumb} from "./uploads.js";

const PAGE = 20;

// The content with each [start, end] code point range of highlights in a <mark>.
export function marked(content, highlights) {
  const points = Array.from(content);  // code points, as the server counts them
  const parts = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start > at) { parts.push(points.slice(at, start).join("")); }
    parts.push(el("mark", {text: points.slice(start, end).join("")}));
    at = end;
  }
  if (at < points.length) { parts.push(points.slice(at).join("")); }
  return parts;
}

function conversationOf(message, me) {
  if (message.group_id !== null) { return {kind: "group", id: message.group_id}; }
  return {kind: "private", id: message.sender_id === me ? message.recipient_id : message.sender_id};
}

function urlOf(conv) {
  return `/chat/${conv.kind === "group" ? "g" : "u"}/${conv.id}`;
}


// A magnifying glass (an SVG, drawn like the page's other icons).
class SearchPanel {
  constructor(host, me) {
    this.me = me;
    this.input = el("input", {type: "search", id: "search-box", class: "search-box",
                              placeholder: t("Search messages"), "aria-label": t("Search messages"),
                              autocomplete: "off", maxlength: "200"});
    this.list = el("ol", {class: "search-results", id: "search-results", "aria-live": "polite"});
    this.note = el("p", {class: "search-note", id: "search-note", hidden: true});
    this.scope = null;  // {kind, id, name}: search in this conversation only
    this.scopeName = el("span", {class: "search-scope-name"});
    this.scopeChip = el("p", {class: "search-scope", id: "search-scope", hidden: true},
                        this.scopeName,
                        el("button", {type: "button", class: "link", text: t("Search all conversations"),
                                      onclick: () => { this.setScope(null); this.input.focus(); }}));
    this.panel = el("div", {class: "search-panel", id: "search-panel", hidden: true},
                    this.note, this.list);
    host.after(el("form", {class: "search-form", role: "search",
                           onsubmit: (e) => { e.preventDefault(); this.run(); }}, this.input, this.scopeChip),
               this.panel);
    this.addHeaderButton();
    let timer = null;
    this.input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => this.run(), 250); });
    this.input.addEventListener("keydown", (e) => { if (e.key === "Escape") { this.close(); } });
    this.panel.addEventListener("scroll", () => {
      const near = this.panel.scrollTop + this.panel.clientHeight > this.panel.scrollHeight - 80;
      if (near && this.more && !this.loading) { this.load(); }
    });
    document.addEventListener("keydown", (e) => {
      const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName);
      if ((e.key === "k" && (e.ctrlKey || e.metaKey)) || (e.key === "/" && !typing)) {
        e.preventDefault();
        this.input.focus();
      }
    });
  }

  close() {
    this.input.value = "";
    this.panel.hidden = true;
    this.list.replaceChildren();
    this.setScope(null, false);
  }

  // "Search in this conversation" next to the conversation header's info link.
  addHeaderButton() {
    const info = document.getElementById("thread-info");
    if (!info) { return; }
    // An icon with a hidden label: the header must still fit a phone's width.
    const label = t("Search in this conversation");
    info.before(el("button", {type: "button", class: "icon-button", id: "thread-search", title: label,
                              onclick: () => this.searchHere()},
                   magnifier(), el("span", {class: "visually-hidden", text: label})));
  }

  // Keep the search to the open conversation (the one the address names) and focus the box.
  searchHere() {
    const conv = conversationAt(location.pathname);
    if (!conv) { return; }
    const name = document.getElementById("thread-title")?.textContent || "";
    if (!this.input.offsetParent) {  // a phone shows the thread alone: back to the list, where the box is
      document.getElementById("thread-back")?.click();
    }
    this.setScope({kind: conv.kind, id: conv.id, name});
    this.input.focus();
  }

  // Set (or with null clear) the conversation the search keeps to, and search again.
  setScope(scope, rerun = true) {
    this.scope = scope;
    this.scopeChip.hidden = !scope;
    this.scopeName.textContent = scope ? t("In {name}", {name: scope.name}) + " " : "";
    this.input.placeholder = scope ? t("Search in this conversation") : t("Search messages");
    if (rerun && this.input.value.trim()) { this.run(); }
  }

  run() {
    this.query = this.input.value.trim();
    this.list.replaceChildren();
    this.before = null;
    this.more = false;
    if (!this.query) { this.panel.hidden = true; return; }
    this.panel.hidden = false;
    this.load();
  }

  async load() {
    const query = this.query;
    const scope = this.scope;
    const params = new URLSearchParams({q: query, limit: String(PAGE)});
    if (this.before) { params.set("before_id", String(this.before)); }
    if (this.scope) { params.set(this.scope.kind === "group" ? "group_id" : "user_id", String(this.scope.id)); }
    this.loading = true;
    try {
      const page = await api("GET", `/api/search?${params}`);
      if (query !== this.query || scope !== this.scope) { return; }  // a newer search has started
      for (const message of page.messages) { this.list.append(this.item(message)); }
      this.more = page.has_more;
      if (page.messages.length) { this.before = page.messages[page.messages.length - 1].id; }
      this.note.hidden = this.list.children.length > 0;
      this.note.textContent = t("No messages found.");
    } catch (error) {
      this.note.hidden = false;
      this.note.textContent = error.message;
    } finally {
      this.loading = false;
    }
  }

  item(message) {
    const conv = conversationOf(message, this.me);
    return el("li", {class: "search-result", dataset: {id: message.id}},
      el("button", {type: "button", class: "search-hit", onclick: () => this.open(message, conv)},
        el("span", {class: "search-meta"},
          el("strong", {text: message.sender_name}),
          " ",
          el("time", {datetime: message.created_at, text: formatShort(new Date(message.created_at))})),
        el("span", {class: "search-text"}, ...marked(message.content, message.highlights)),
        smallThumb(message.attachments)));
  }

  // Open the result's conversation at that message: the address says where, app.js opens the
  // conversation (as after Back / Forward) and thread.js loads the history around the message.
  open(hit, conv) {
    for (const node of this.list.querySelectorAll(".search-result.active")) { node.classList.remove("active"); }
    this.list.querySelector(`.search-result[data-id="${hit.id}"]`)?.classList.add("active");
    history.pushState(null, "", `${urlOf(conv)}#message-${hit.id}`);
    window.dispatchEvent(new PopStateEvent("popstate"));
  }
}

const head = document.querySelector(".page-chat .sidebar-head");
const me = Number(document.body.dataset.me || 0);
if (head) { window.chatSearch = new SearchPanel(head, me); }
