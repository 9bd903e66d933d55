// The service worker: Web Push while no page of the chat is open (docs/protocol.md, Attention).
// The server sends {"kind":"message","id","conversation","sender","excerpt"}, encrypted for
// this browser's subscription; the notification opens (or focuses) that conversation.

function conversationUrl(conversation) {
  if (!conversation) { return "/"; }
  if (conversation.kind === "group") { return `/chat/g/${conversation.group_id}`; }
  return `/chat/u/${conversation.user_id}`;
}

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  const url = conversationUrl(data.conversation);
  const title = (data.sender && data.sender.username) || "Chat";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.excerpt || "", tag: url, renotify: true, data: {url},
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true}).then((pages) => {
    for (const page of pages) {
      if (new URL(page.url).pathname === url && "focus" in page) { return page.focus(); }
    }
    return self.clients.openWindow(url);
  }));
});
