// Where the reader is in the message list. A list scrolled to the bottom stays there when the
// layout shifts under it (the offline banner appears, a multi-line draft grows the composer, a
// picture loads); "seen" is the newest message actually in sight.

const SLACK = 24;  // px from the bottom that still count as "at the bottom"

// Keep `scroller` at its bottom across resizes of itself or of `content`, if it was there.
// Returns `release()`: the caller is about to scroll elsewhere itself (opening the list at a
// message), so a resize before the next scroll event must not pull it back down.
export function keepAtBottom(scroller, content) {
  let atBottom = true;
  const measure = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < SLACK;
  scroller.addEventListener("scroll", () => { atBottom = measure(); }, {passive: true});
  const release = () => { atBottom = false; };
  if (typeof ResizeObserver !== "function") { return release; }
  const observer = new ResizeObserver(() => {
    if (atBottom) { scroller.scrollTop = scroller.scrollHeight; }
  });
  observer.observe(scroller);
  if (content) { observer.observe(content); }
  return release;
}

// The id of the newest stored message whose top is in sight in `scroller` (0 if none).
export function newestShown(scroller, list) {
  const bottom = scroller.getBoundingClientRect().bottom;
  const nodes = list.querySelectorAll(":scope > .msg[data-id]");
  for (let i = nodes.length - 1; i >= 0; i -= 1) {
    const box = nodes[i].getBoundingClientRect();
    if (box.top < bottom - 8 && box.height > 0) { return Number(nodes[i].dataset.id); }
  }
  return 0;
}
