// Building DOM nodes safely: user text only ever goes in through textContent or text nodes.

// el("li", {class: "x", text: "hi", dataset: {id: 3}}, child...): a new element.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) { continue; }
    if (key === "class") { node.className = value; }
    else if (key === "text") { node.textContent = value; }
    else if (key === "dataset") { Object.assign(node.dataset, value); }
    else if (key.startsWith("on") && typeof value === "function") { node.addEventListener(key.slice(2), value); }
    else { node.setAttribute(key, value === true ? "" : String(value)); }
  }
  // Strings become text nodes here (append never parses HTML).
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// A user's (round) or a group's (square) picture: the initial on a colour picked by id.
export function avatar(id, name, isGroup = false) {
  const initial = (Array.from(name || "?")[0] || "?").toUpperCase();
  return el("span", {class: `avatar av-${Math.abs(id) % 8}${isGroup ? " avatar-group" : ""}`,
                     "aria-hidden": "true", text: initial});
}

// A count as a badge shows it: up to 99, then "99+".
export function badgeText(count) {
  return count > 99 ? "99+" : String(count);
}

// Say something to screen readers without showing it (the page's polite live region).
export function announce(text) {
  const region = document.getElementById("announce");
  if (!region) { return; }
  region.textContent = "";
  // A fresh node after a tick, so repeating the same words is announced again.
  setTimeout(() => { region.textContent = text; }, 50);
}
