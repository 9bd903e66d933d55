// Telling the user about new messages while they look elsewhere: a desktop notification
// (Notification API) and an optional sound while the page is open in a background tab, and
// Web Push (the service worker, /sw.js) for when no page is open. Permission is asked only
// when the user turns notifications on (settings.js), never on page load. Nothing for a
// muted conversation unless the message mentions us; the text only if the user allows
// previews (PATCH /api/me {"push_previews"}).

import {api} from "./net.js";
import {t} from "./i18n.js";

const KEY = "chat.notify";  // this browser's choices: {desktop: bool, sound: bool}

// This browser's notification choices.
export function notifyChoices() {
  try { return {desktop: false, sound: false, ...JSON.parse(localStorage.getItem(KEY) || "{}")}; }
  catch (e) { return {desktop: false, sound: false}; }
}

// Remember a choice ({desktop} or {sound}).
export function setNotifyChoice(change) {
  try { localStorage.setItem(KEY, JSON.stringify({...notifyChoices(), ...change})); } catch (e) { /* private mode */ }
}

// Whether the page is looked at now (visible and focused).
function looking() {
  return document.visibilityState === "visible" && document.hasFocus();
}

let previews = null;  // the account's push_previews, read once
let audio = null;

// A short two-tone chime (Web Audio: no file to fetch). Browsers allow sound only after the
// user has interacted with the page; before that this is silently skipped.
function chime() {
  try {
    audio = audio || new AudioContext();
    if (audio.state !== "running") { audio.resume().catch(() => {}); }
    const now = audio.currentTime;
    for (const [offset, freq] of [[0, 880], [0.12, 1320]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = freq;
      gain.gain.setValueAtTime(0.08, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.25);
      tone.connect(gain).connect(audio.destination);
      tone.start(now + offset);
      tone.stop(now + offset + 0.3);
    }
  } catch (e) { /* no audio here */ }
}

// A live message from someone else: notify if the user is elsewhere. `conv` is the list's
// conversation (muted, name); `open()` shows that conversation.
export async function notifyMessage(message, me, conv, open) {
  if (message.sender_id === me || looking()) { return; }
  const mentioned = Boolean(message.mention_all) || (message.mentions || []).includes(me);
  if (conv && conv.muted && !mentioned) { return; }
  const choices = notifyChoices();
  if (choices.sound) { chime(); }
  if (!choices.desktop || !("Notification" in window) || Notification.permission !== "granted") { return; }
  if (previews === null) {
    try { previews = (await api("GET", "/api/me")).push_previews; } catch (e) { previews = false; }
  }
  const group = message.group_id !== null && message.group_id !== undefined;
  const title = group && conv ? `${message.sender_name} · ${conv.name}` : message.sender_name;
  let body = t("New message");
  if (mentioned) { body = t("mentioned you"); }
  if (previews && message.content) { body = message.content.slice(0, 200); }
  const shown = new Notification(title, {body, tag: `chat-${group ? "g" : "u"}-${group ? message.group_id : message.sender_id}`});
  shown.onclick = () => {
    window.focus();
    open();
    shown.close();
  };
}

// "AAAA..." (base64url) as the bytes pushManager.subscribe wants.
function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

// Register the service worker and subscribe this browser to Web Push (the server keeps the
// subscription). Throws with the browser's reason when push is not available here.
export async function subscribePush() {
  if (!("serviceWorker" in navigator)) { throw new Error(t("This browser cannot show notifications.")); }
  const registration = await navigator.serviceWorker.register("/sw.js", {scope: "/"});
  await navigator.serviceWorker.ready;
  if (!("PushManager" in window)) { return null; }
  const {key} = await api("GET", "/api/push/key");
  const subscription = await registration.pushManager.getSubscription()
    || await registration.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: keyBytes(key)});
  const {endpoint, keys} = subscription.toJSON();
  await api("POST", "/api/push/subscriptions", {endpoint, keys: {p256dh: keys.p256dh, auth: keys.auth}});
  return subscription;
}

// Stop Web Push for this browser (the server forgets the subscription).
export async function unsubscribePush() {
  const registration = await navigator.serviceWorker?.getRegistration("/");
  const subscription = await registration?.pushManager?.getSubscription();
  if (subscription) {
    await api("DELETE", "/api/push/subscriptions", {endpoint: subscription.endpoint}).catch(() => {});
    await subscription.unsubscribe().catch(() => {});
  }
}

// On every page: keep the service worker registered while desktop notifications are on.
export function keepServiceWorker() {
  if (notifyChoices().desktop && "serviceWorker" in navigator && Notification.permission === "granted") {
    navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch(() => {});
  }
}
