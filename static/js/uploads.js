// Files and pictures on the chat page. The file button, paste and drop put files in a tray
// above the composer; each starts uploading at once, with its own progress bar and a cancel.
// Send (thread.js) sends one message holding the finished files, the composer's text as its
// optional caption. In the bubbles: thumbnails for pictures (their box sized before they
// load, so the list does not jump) and download links for other files. User text only goes
// in as text.

import {el} from "./dom.js";
import {paperclip} from "./icons.js";
import {t} from "./i18n.js";
import {api} from "./net.js";
import "./viewer.js";

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";
const MAX_FILES = 10;  // a message holds at most 10 files
const THUMB = 320;
const QUOTE_THUMB = 40;

// Upload one file (multipart, part "file"). Returns {promise, abort}: the promise resolves to
// the file object; progress is reported 0..1.
export function uploadFile(file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", "/api/uploads");
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) { onProgress(event.loaded / event.total); }
    };
    xhr.onload = () => (xhr.status === 201 ? resolve(xhr.response)
      : reject(new Error(refusal(xhr.status, xhr.response))));
    xhr.onerror = () => reject(new Error(t("Network error")));
    xhr.onabort = () => reject(new Error(t("Cancelled")));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
  return {promise, abort: () => xhr.abort()};
}

// The reason the server refused an upload, in the viewer's language. The server's own
// message is English; an upload can only be refused for a few reasons, each said here.
function refusal(status, body) {
  // Over the size limit is refused before upload (Tray.add), so a 413 here is the quota.
  if (status === 413) { return t("Over your storage quota: there is no room left for this file."); }
  // The one 400 a browser's upload can get: a "picture" that does not decode.
  if (status === 400) { return t("This picture could not be read (it is damaged, or over 50 megapixels)."); }
  if (status === 429) { return t("too many requests, slow down"); }
  if (status === 401) { return t("log in first"); }
  return t(body?.error?.message || "Network error");
}

// "1.2 MB": a file's size for people.
export function sizeText(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

// The thumbnail of a picture in a box of at most `box` px, sized from the picture's own
// width and height so that the space is kept before the image arrives.
function thumbImage(file, box, cls) {
  const scale = Math.min(1, box / Math.max(file.width || 1, file.height || 1));
  const width = Math.max(1, Math.round((file.width || box) * scale));
  const height = Math.max(1, Math.round((file.height || box) * scale));
  return el("img", {src: file.thumb_url, alt: file.name, loading: "lazy", class: cls, width, height,
                    style: `aspect-ratio: ${width} / ${height}`});
}

// The files of a message for its bubble (null when it has none). A picture is a link to the
// full size that the viewer (viewer.js) opens in the page.
export function attachmentsView(files) {
  if (!files || !files.length) { return null; }
  return el("div", {class: "attachments"}, ...files.map((file) => {
    if (file.kind === "image" && file.thumb_url) {
      return el("a", {href: file.url, class: "attachment-image", dataset: {name: file.name},
                      title: file.name}, thumbImage(file, THUMB));
    }
    return el("a", {href: file.url, download: file.name, class: "attachment-file"},
              el("span", {class: "attachment-icon", "aria-hidden": "true", text: fileIcon(file)}),
              el("span", {class: "attachment-name", text: file.name}),
              el("span", {class: "attachment-size", text: sizeText(file.size)}));
  }));
}

// The first picture of a message, small (a reply's quote, a search result); null if none.
export function smallThumb(files) {
  const picture = (files || []).find((f) => f.kind === "image" && f.thumb_url);
  return picture ? thumbImage(picture, QUOTE_THUMB, "small-thumb") : null;
}

const originals = new Map();  // message id -> Promise of its attachments (quotes, fetched once)

// The small picture in a reply's quote: from the original when it is among the loaded
// messages (`loaded`), else fetched once from the conversation's history (`historyBase`)
// into a slot that the thumbnail replaces when it comes, if the original holds a picture.
export function quoteThumb(reply, loaded, historyBase) {
  if (loaded) { return smallThumb(loaded.attachments); }
  if (reply.recalled || !historyBase) { return null; }
  if (!originals.has(reply.id)) {
    originals.set(reply.id, api("GET", `${historyBase}?around_id=${reply.id}&limit=1`)
      .then((page) => page.messages.find((m) => m.id === reply.id)?.attachments || [])
      .catch(() => []));
  }
  const slot = el("span", {class: "quote-thumb-slot", hidden: true});
  originals.get(reply.id).then((files) => {
    const thumb = smallThumb(files);
    if (thumb) { slot.replaceWith(thumb); } else { slot.remove(); }
  });
  return slot;
}

// A type icon for a file that is not a picture (by its detected type, not its name).
// A file's type, as a short badge: the name's extension in capitals (PDF, ZIP, DOCX), since
// the server types every file that is not a picture as application/octet-stream. Text, not
// an emoji, so it shows on every system.
function fileIcon(file) {
  const match = /\.([A-Za-z0-9]{1,5})$/.exec(file.name || "");
  return match ? match[1].toUpperCase() : t("FILE");
}

// The files waiting to go with the next message: each uploading (or done, or failed) with
// its progress and a cancel button.
class Tray {
  constructor(form, limit) {
    this.limit = limit;
    this.items = [];
    this.list = el("ul", {class: "upload-tray", "aria-label": t("Files to send")});
    this.status = el("p", {class: "upload-status", "aria-live": "polite"});
    form.prepend(this.list, this.status);
    this.render();
  }

  get count() { return this.items.length; }

  // Take files from the button, a paste or a drop: refused at once where the browser can
  // tell (too many, too big), uploaded otherwise.
  add(files) {
    this.say("");
    if (this.items.length + files.length > MAX_FILES) {
      this.say(t("A message holds at most 10 files."), true);
      return;
    }
    const refused = [];  // one line per file refused, the others upload
    for (const file of files) {
      if (this.limit && file.size > this.limit) {
        refused.push(t("{name} is too big: files can be at most {size}.",
                       {name: file.name, size: sizeText(this.limit)}));
        continue;
      }
      this.start(file);
    }
    if (refused.length) { this.say(refused.join("\n"), true); }
    this.render();
  }

  start(file) {
    const item = {file, state: "uploading", progress: 0, made: null, error: null};
    const upload = uploadFile(file, (part) => { item.progress = part; this.draw(item); });
    item.abort = upload.abort;
    item.promise = upload.promise.then((made) => {
      item.state = "done";
      item.made = made;
      this.draw(item);
      return made;
    }, (error) => {
      item.state = "failed";
      item.error = error.message;
      this.draw(item);
      throw error;
    });
    item.promise.catch(() => {});  // reported in the tray; send() asks again
    this.items.push(item);
  }

  // Cancel one file: its upload stops and it will not be sent.
  remove(item) {
    if (item.state === "uploading") { item.abort(); }
    this.items = this.items.filter((i) => i !== item);
    this.render();
  }

  // The file objects once every upload has finished; throws if one failed.
  async ready() {
    const failed = this.items.find((i) => i.state === "failed");
    if (failed) { throw new Error(`${failed.file.name}: ${failed.error}`); }
    if (this.items.some((i) => i.state === "uploading")) { this.say(t("Uploading…")); }
    return Promise.all(this.items.map((i) => i.promise));
  }

  clear() {
    this.items = [];
    this.say("");
    this.render();
  }

  say(text, error = false) {
    this.status.replaceChildren(text ? el("span", {class: error ? "upload-error" : "", role: error ? "alert" : null,
                                                   text}) : "");
  }

  render() {
    this.list.replaceChildren(...this.items.map((item) => {
      item.node = el("li", {class: "upload-item"},
        el("span", {class: "upload-name", text: item.file.name}),
        el("span", {class: "upload-size", text: sizeText(item.file.size)}),
        el("progress", {max: "1", "aria-label": item.file.name}),
        el("span", {class: "upload-state"}),
        el("button", {type: "button", class: "secondary small upload-cancel", text: "✕",
                      "aria-label": t("Remove {name}", {name: item.file.name}),
                      title: t("Remove {name}", {name: item.file.name}), onclick: () => this.remove(item)}));
      this.draw(item);
      return item.node;
    }));
    this.list.hidden = !this.items.length;
  }

  draw(item) {
    if (!item.node) { return; }
    item.node.dataset.state = item.state;
    const bar = item.node.querySelector("progress");
    // Before the first progress event the bar moves without a value (indeterminate).
    if (item.state === "uploading" && !item.progress) { bar.removeAttribute("value"); }
    else { bar.value = item.state === "done" ? 1 : item.progress; }
    item.node.querySelector(".upload-state").textContent =
      item.state === "failed" ? `${t("Not sent")}: ${item.error}` : item.state === "done" ? "✓" : "";
  }
}

export let tray = null;  // the chat page's tray (thread.js sends what it holds)

// Add the file button, paste and drop to the composer (once, on the chat page).
function setup() {
  const form = document.getElementById("composer");
  const text = document.getElementById("text");
  if (!form || !text) { return; }
  document.head.append(el("link", {rel: "stylesheet", href: "/static/css/uploads.css"}));
  const limit = Number(document.getElementById("chat")?.dataset.maxUpload || 0);
  tray = new Tray(form, limit);
  const input = el("input", {type: "file", multiple: true, hidden: true, id: "file-input",
                             onchange: () => { tray.add([...input.files]); input.value = ""; }});
  const button = el("button", {type: "button", class: "secondary attach", id: "attach",
                               "aria-label": t("Attach files"), title: t("Attach files"),
                               onclick: () => input.click()}, paperclip());
  text.before(button, input);
  text.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      tray.add(files);
    }
  });
  const pane = form.closest(".thread") || form;
  pane.addEventListener("dragover", (event) => {
    if ([...(event.dataTransfer?.types || [])].includes("Files")) {
      event.preventDefault();
      pane.classList.add("dropping");
    }
  });
  pane.addEventListener("dragleave", (event) => {
    if (!pane.contains(event.relatedTarget)) { pane.classList.remove("dropping"); }
  });
  pane.addEventListener("drop", (event) => {
    pane.classList.remove("dropping");
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) {
      event.preventDefault();
      tray.add(files);
    }
  });
}

setup();
