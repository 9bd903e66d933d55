// A message list scrolled to the bottom stays there when the layout shifts under it (the
// offline banner appears, a multi-line draft grows the composer, a picture loads).

const SLACK = 24;  // px from the bottom that still count as "at the bottom"

// Keep `scroller` at its bottom across resizes of itself or of `content`, if it was there.
export function keepAtBottom(scroller, content) {
  let atBottom = true;
  const measure = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < SLACK;
  scroller.addEventListener("scroll", () => { atBottom = measure(); }, {passive: true});
  if (typeof ResizeObserver !== "function") { return; }
  const observer = new ResizeObserver(() => {
    if (atBottom) { scroller.scrollTop = scroller.scrollHeight; }
  });
  observer.observe(scroller);
  if (content) { observer.observe(content); }
}
