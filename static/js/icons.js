// Small icons drawn as inline SVG: they look the same on every system, where an emoji
// character would depend on the fonts installed (a box on a machine without an emoji font).

const NS = "http://www.w3.org/2000/svg";

// A 20x20 icon from one 24x24 path, hidden from screen readers (its button has a label).
function icon(d) {
  const svg = document.createElementNS(NS, "svg");
  for (const [k, v] of Object.entries({viewBox: "0 0 24 24", width: "20", height: "20", "aria-hidden": "true"})) {
    svg.setAttribute(k, v);
  }
  const path = document.createElementNS(NS, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}

// The same glass as the conversation list's search button (templates/pages/chat.html).
export function magnifier() {
  return icon("M10 4a6 6 0 1 0 3.47 10.9l4.81 4.82 1.42-1.42-4.82-4.81A6 6 0 0 0 10 4zm0 2a4 4 0 1 1 0 8 4 4 0 0 1 0-8z");
}

export function paperclip() {
  return icon("M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z");
}
