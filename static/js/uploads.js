// Files and pictures on the chat page: a file button, paste and drop in the composer, each
// upload with its progress, then one message holding the files; in the bubbles, thumbnails
// for pictures and download links for other files. User text only goes in as text.

import {api} from "./net.js";
import {el} from "./dom.js";
import {t} from "./i18n.js";
import {conversationAt} from "./conversations.js";
import {Conversation} from "./protocol.js";

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";
const MAX_FILES = 10;  // a message holds at most 10 files
const THUMB = 320;

// Upload one file (multipart, part "file"); resolves to its file object, reports progress 0..1.
export function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/uploads");
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) { onProgress(event.loaded / event.total); }
    };
    xhr.onload = () => (xhr.status === 201 ? resolve(xhr.response)
      : reject(new Error(xhr.response?.error?.message || xhr.statusText)));
    xhr.onerror = () => reject(new Error(t("Network error")));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

// "1.2 MB": a file's size for people.
function sizeText(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

// The files of a message for its bubble (null when it has none).
export function attachmentsView(files) {
  if (!files || !files.length) { return null; }
  return el("div", {class: "attachments"}, ...files.map((file) => {
    if (file.kind === "image" && file.thumb_url) {
      const scale = Math.min(1, THUMB / Math.max(file.width || 1, file.height || 1));
      return el("a", {href: file.url, target: "_blank", rel: "noopener", class: "attachment-image"},
                el("img", {src: file.thumb_url, alt: file.name, loading: "lazy",
                           width: Math.round((file.width || THUMB) * scale),
                           height: Math.round((file.height || THUMB) * scale)}));
    }
    return el("a", {href: file.url, download: file.name, class: "attachment-file"},
              el("span", {class: "attachment-name", text: file.name}),
              el("span", {class: "attachment-size", text: sizeText(file.size)}));
  }));
}

// Upload the files, then send one message with them to the open conversation.
async function sendFiles(files, status) {
  const conv = conversationAt(location.pathname);
  if (!conv || !files.length) { return; }
  if (files.length > MAX_FILES) {
    status.replaceChildren(t("A message holds at most 10 files."));
    return;
  }
  const bar = el("progress", {max: "1", value: "0"});
  status.replaceChildren(el("span", {text: t("Uploading…")}), bar);
  try {
    const done = new Array(files.length).fill(0);
    const made = await Promise.all(files.map((file, index) => uploadFile(file, (part) => {
      done[index] = part;
      bar.value = done.reduce((a, b) => a + b, 0) / files.length;
    })));
    const target = conv.kind === Conversation.GROUP ? {group_id: conv.id} : {recipient_id: conv.id};
    await api("POST", "/api/messages", {...target, content: "", client_id: crypto.randomUUID(),
                                        attachments: made.map((file) => file.id)});
    status.replaceChildren();
  } catch (error) {
    status.replaceChildren(el("span", {class: "upload-error", role: "alert",
                                       text: `${t("Not sent")}: ${error.message}`}));
  }
}

// Add the file button, paste and drop to the composer (once, on the chat page).
function setup() {
  const form = document.getElementById("composer");
  const text = document.getElementById("text");
  if (!form || !text) { return; }
  document.head.append(el("link", {rel: "stylesheet", href: "/static/css/uploads.css"}));
  const status = el("p", {class: "upload-status", "aria-live": "polite"});
  const input = el("input", {type: "file", multiple: true, hidden: true, id: "file-input",
                             onchange: () => { sendFiles([...input.files], status); input.value = ""; }});
  const button = el("button", {type: "button", class: "secondary attach", id: "attach",
                               "aria-label": t("Attach files"), title: t("Attach files"), text: "📎",
                               onclick: () => input.click()});
  text.before(button, input);
  form.append(status);
  text.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      sendFiles(files, status);
    }
  });
  form.addEventListener("dragover", (event) => { event.preventDefault(); });
  form.addEventListener("drop", (event) => {
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) {
      event.preventDefault();
      sendFiles(files, status);
    }
  });
}

setup();
