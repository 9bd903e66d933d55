// The settings page's browser half: desktop notifications (asked for on the user's click,
// never on load; then the service worker for Web Push) and the sound, which belong to this
// browser rather than to the account. Presence and previews are a plain form (works without
// JavaScript).

import {t} from "./i18n.js";
import {notifyChoices, setNotifyChoice, subscribePush, unsubscribePush} from "./notify.js";

const state = document.getElementById("notify-state");
const on = document.getElementById("notify-on");
const off = document.getElementById("notify-off");
const sound = document.getElementById("notify-sound");

function show(note) {
  const supported = "Notification" in window;
  const enabled = supported && notifyChoices().desktop && Notification.permission === "granted";
  on.hidden = !supported || enabled;
  off.hidden = !enabled;
  if (note) { state.textContent = note; }
  else if (!supported) { state.textContent = t("This browser cannot show notifications."); }
  else if (Notification.permission === "denied") {
    state.textContent = t("Notifications are blocked for this site in the browser's settings.");
  } else {
    state.textContent = enabled ? t("Desktop notifications are on in this browser.")
      : t("Desktop notifications are off in this browser.");
  }
}

on.addEventListener("click", async () => {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    show();
    return;
  }
  setNotifyChoice({desktop: true});
  let note = "";
  try {
    await subscribePush();
  } catch (error) {  // the page's notifications work; push (tab closed) does not here
    note = `${t("Desktop notifications are on in this browser.")} ${t("Notifications with the chat closed are not available here:")} ${error.message}`;
  }
  show(note);
});

off.addEventListener("click", async () => {
  setNotifyChoice({desktop: false});
  await unsubscribePush();
  show();
});

sound.checked = notifyChoices().sound;
sound.addEventListener("change", () => setNotifyChoice({sound: sound.checked}));
show();
