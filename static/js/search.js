// Search over every conversation (GET /api/search), in a panel over the conversation list.
// Ctrl+K or "/" focuses the box; results are newest first with the matches marked; more
// load as the list scrolls; a result opens a preview of its conversation around it
// (GET ...?around_id=) with a link into the conversation. User text only ever goes in
// through text nodes (dom.js's el), never as HTML.
import {el} from "./dom.js";
import {formatShort, t} from "./i18n.js";
import {api} from "./net.js";

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

function historyPath(conv) {
  return conv.kind === "group" ? `/api/groups/${conv.id}/messages` : `/api/messages/${conv.id}`;
}

class SearchPanel {
  constructor(host, me) {
    this.me = me;
    this.input = el("input", {type: "search", id: "search-box", class: "search-box",
                              placeholder: t("Search messages"), "aria-label": t("Search messages"),
                              autocomplete: "off", maxlength: "200"});
    this.list = el("ol", {class: "search-results", id: "search-results", "aria-live": "polite"});
    this.note = el("p", {class: "search-note", id: "search-note", hidden: true});
    this.preview = el("section", {class: "search-preview", id: "search-preview", hidden: true});
    this.panel = el("div", {class: "search-panel", id: "search-panel", hidden: true},
                    this.note, this.list, this.preview);
    host.after(el("form", {class: "search-form", role: "search",
                           onsubmit: (e) => { e.preventDefault(); this.run(); }}, this.input),
               this.panel);
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
  }

  run() {
    this.query = this.input.value.trim();
    this.list.replaceChildren();
    this.preview.hidden = true;
    this.list.hidden = false;
    this.before = null;
    this.more = false;
    if (!this.query) { this.panel.hidden = true; return; }
    this.panel.hidden = false;
    this.load();
  }

  async load() {
    const query = this.query;
    const params = new URLSearchParams({q: query, limit: String(PAGE)});
    if (this.before) { params.set("before_id", String(this.before)); }
    this.loading = true;
    try {
      const page = await api("GET", `/api/search?${params}`);
      if (query !== this.query) { return; }  // a newer query has started
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
        el("span", {class: "search-text"}, ...marked(message.content, message.highlights))));
  }

  async open(hit, conv) {
    const params = new URLSearchParams({around_id: String(hit.id), limit: "9"});
    const page = await api("GET", `${historyPath(conv)}?${params}`);
    const items = page.messages.map((m) => el("li",
      {class: m.id === hit.id ? "search-context-hit" : "", dataset: {id: m.id}},
      el("strong", {text: m.sender_name}), ": ",
      ...(m.id === hit.id ? marked(hit.content, hit.highlights) : [m.content])));
    this.preview.replaceChildren(
      el("button", {type: "button", class: "link", text: t("Back to results"),
                    onclick: () => { this.preview.hidden = true; this.list.hidden = false; }}),
      el("ol", {class: "search-context"}, ...items),
      el("a", {class: "button small", href: urlOf(conv), text: t("Open conversation")}));
    this.list.hidden = true;
    this.preview.hidden = false;
    const mark = this.preview.querySelector(".search-context-hit");
    if (mark) { mark.scrollIntoView({block: "center"}); }
  }
}

const head = document.querySelector(".page-chat .sidebar-head");
const me = Number(document.body.dataset.me || 0);
if (head) { window.chatSearch = new SearchPanel(head, me); }
