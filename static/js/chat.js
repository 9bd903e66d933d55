// The chat page client: one WebSocket, history, live messages, acks, typing, reconnect + sync.
// Every piece of user text goes into the page with textContent, never as HTML.
(function () {
  "use strict";
  var root = document.getElementById("chat");
  if (!root) { return; }
  var kind = root.dataset.kind, target = Number(root.dataset.target), me = Number(root.dataset.me);
  var list = document.getElementById("messages"), statusEl = document.getElementById("status");
  var typingEl = document.getElementById("typing"), text = document.getElementById("text");
  var olderBtn = document.getElementById("older");
  var ws = null, lastId = 0, oldestId = null, shown = {}, pending = {}, attempt = 0, typingTimer = null;

  function mine(m) {
    if (kind === "group") { return m.group_id === target; }
    return m.group_id === null && ((m.sender_id === me && m.recipient_id === target) ||
                                   (m.sender_id === target && m.recipient_id === me));
  }
  function render(m, li) {
    li = li || document.createElement("li");
    li.className = "message" + (m.sender_id === me ? " mine" : "");
    li.textContent = "";
    var meta = document.createElement("span");
    meta.className = "meta";
    var when = m.created_at ? new Date(m.created_at) : new Date();
    meta.textContent = (m.sender_name || "?") + " · " + when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
    var body = document.createElement("span");
    body.textContent = m.content;
    li.appendChild(meta); li.appendChild(body);
    if (m.id) { li.dataset.id = m.id; }
    return li;
  }
  function add(m, atTop) {
    if (m.id && shown[m.id]) { return; }
    if (m.id) { shown[m.id] = true; lastId = Math.max(lastId, m.id); }
    if (m.client_id && pending[m.client_id]) {   // our own message, sent from this tab
      render(m, pending[m.client_id]); delete pending[m.client_id]; return;
    }
    var li = render(m);
    if (atTop) { list.insertBefore(li, list.firstChild); } else { list.appendChild(li); list.scrollTop = list.scrollHeight; }
    if (oldestId === null || m.id < oldestId) { oldestId = m.id; }
  }
  function send(frame) { if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; } return false; }
  function markRead() {
    if (lastId && document.visibilityState === "visible") {
      send({type: 5, recipient_id: target, group: kind === "group", last_read_id: lastId});
    }
  }
  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(proto + location.host + "/ws");
    statusEl.textContent = "Connecting…";
    ws.onopen = function () { attempt = 0; };
    ws.onmessage = function (ev) {
      var f = JSON.parse(ev.data);
      if (f.kind === "hello") {
        statusEl.textContent = "Connected";
        if (lastId) { send({type: 7, since_id: lastId}); }
        else { send({type: 3, recipient_id: target, group: kind === "group", limit: 30}); }
        Object.keys(pending).forEach(function (cid) { pending[cid].resend(); });
      } else if (f.kind === "history") {
        if (oldestId === null) { f.messages.forEach(function (m) { add(m, false); }); }
        else { f.messages.slice().reverse().forEach(function (m) { add(m, true); }); }
        olderBtn.hidden = !f.has_more;
        markRead();
      } else if (f.kind === "sync") {
        f.messages.forEach(function (m) { if (mine(m)) { add(m, false); } });
        if (f.has_more) { send({type: 7, since_id: f.messages[f.messages.length - 1].id}); }
        markRead();
      } else if (f.kind === "message") {
        if (mine(f)) { add(f, false); markRead(); }
      } else if (f.kind === "ack") {
        var li = pending[f.client_id];
        if (li) { li.classList.remove("pending"); li.dataset.id = f.id; shown[f.id] = true; lastId = Math.max(lastId, f.id); delete pending[f.client_id]; }
      } else if (f.kind === "typing" && ((kind === "group" && f.group_id === target) || (kind === "private" && f.user_id === target))) {
        typingEl.textContent = "typing…";
        clearTimeout(typingTimer); typingTimer = setTimeout(function () { typingEl.textContent = ""; }, 3000);
      } else if (f.kind === "error") {
        var failed = f.ref && pending[f.ref];
        if (failed) { failed.classList.add("failed"); failed.title = f.content; }
        statusEl.textContent = f.content;
      }
    };
    ws.onclose = function () {
      statusEl.textContent = "Offline, reconnecting…";
      var delay = Math.min(30000, 500 * Math.pow(2, attempt++)) * (0.5 + Math.random());
      setTimeout(connect, delay);
    };
  }
  document.getElementById("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var content = text.value;
    if (!content.trim()) { return; }
    var cid = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
    var frame = {type: kind === "group" ? 4 : 1, recipient_id: target, content: content, client_id: cid};
    var li = render({sender_id: me, sender_name: "me", content: content});
    li.classList.add("pending");
    li.resend = function () { send(frame); };
    pending[cid] = li;
    list.appendChild(li); list.scrollTop = list.scrollHeight;
    text.value = "";
    send(frame);
  });
  text.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); document.getElementById("composer").requestSubmit(); return; }
    send({type: 6, recipient_id: target, group: kind === "group"});
  });
  olderBtn.addEventListener("click", function () {
    if (oldestId) { send({type: 3, recipient_id: target, group: kind === "group", before_id: oldestId, limit: 30}); }
  });
  document.addEventListener("visibilitychange", markRead);
  connect();
}());
