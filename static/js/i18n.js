// Words and dates in the viewer's language: strings come with the page (chat/i18n.py),
// dates and times are formatted by Intl in the browser's own time zone.

const catalog = readCatalog();
const locale = document.documentElement.lang || "en";

const timeFormat = new Intl.DateTimeFormat(locale, {hour: "numeric", minute: "2-digit"});
const weekdayFormat = new Intl.DateTimeFormat(locale, {weekday: "long", month: "long", day: "numeric"});
const fullDayFormat = new Intl.DateTimeFormat(locale, {year: "numeric", month: "long", day: "numeric"});
const shortDayFormat = new Intl.DateTimeFormat(locale, {month: "short", day: "numeric"});
const dateFormat = new Intl.DateTimeFormat(locale, {dateStyle: "medium"});
const dateTimeFormat = new Intl.DateTimeFormat(locale, {dateStyle: "medium", timeStyle: "short"});

// Read the page's JSON block of translations (empty for English: the msgids are English).
function readCatalog() {
  const node = document.getElementById("i18n-catalog");
  try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
}

// The translation of msgid with {placeholders} filled in (the result is text, never HTML).
export function t(msgid, params) {
  const text = catalog[msgid] || msgid;
  if (!params) { return text; }
  return text.replace(/\{(\w+)\}/g, (whole, key) => (key in params ? String(params[key]) : whole));
}

// A key that is equal for two moments on the same local calendar day.
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

// Whole local days between two dates (0: same day, 1: yesterday...).
function daysBetween(earlier, later) {
  const a = new Date(earlier.getFullYear(), earlier.getMonth(), earlier.getDate());
  const b = new Date(later.getFullYear(), later.getMonth(), later.getDate());
  return Math.round((b - a) / 86400000);
}

// "10:02" in the viewer's clock.
export function formatTime(date) {
  return timeFormat.format(date);
}

// A day separator's label: Today, Yesterday, a weekday this week, or the full date.
export function formatDay(date, now = new Date()) {
  const days = daysBetween(date, now);
  if (days === 0) { return t("Today"); }
  if (days === 1) { return t("Yesterday"); }
  if (date.getFullYear() === now.getFullYear()) { return weekdayFormat.format(date); }
  return fullDayFormat.format(date);
}

// The conversation list's compact stamp: the time today, else "Yesterday", else the date.
export function formatShort(date, now = new Date()) {
  const days = daysBetween(date, now);
  if (days === 0) { return formatTime(date); }
  if (days === 1) { return t("Yesterday"); }
  return shortDayFormat.format(date);
}

// Rewrite every server-rendered <time data-format> (UTC) in the viewer's time zone.
export function localiseTimes(root = document) {
  for (const node of root.querySelectorAll("time[datetime][data-format]")) {
    const date = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) { continue; }
    const style = node.dataset.format;
    node.textContent = style === "short" ? formatShort(date)
      : style === "date" ? dateFormat.format(date) : dateTimeFormat.format(date);
    node.title = formatFull(date);
  }
}

// The full date and time, for a tooltip.
export function formatFull(date) {
  return dateTimeFormat.format(date);
}
