// Talking to the server: JSON over fetch (with the CSRF header) and one self-healing WebSocket.

import {Close, Frame, Kind} from "./protocol.js";

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";

// An HTTP error with the API's error code (docs/protocol.md 3.4) and its message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Call the JSON API with the session cookie; writes carry X-CSRFToken. Throws ApiError.
export async function api(method, path, body) {
  const options = {method, credentials: "same-origin", headers: {Accept: "application/json"}};
  if (method !== "GET") { options.headers["X-CSRFToken"] = csrfToken; }
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, "network", error.message);
  }
  let data = null;
  try { data = await response.json(); } catch (e) { /* not JSON: judged by the status below */ }
  if (!response.ok) {
    const detail = (data && data.error) || {};
    throw new ApiError(response.status, detail.code || "error", detail.message || response.statusText);
  }
  return data;
}

// How long to wait before reconnect attempt n: exponential, with jitter ("equal jitter":
// half fixed, half random) so that the clients of a restarted server spread out instead of
// all knocking at the same instant. Capped at 4 s while someone looks at the tab (they are
// waiting for it), at 30 s for a hidden one.
export const VISIBLE_CAP = 4000;
export function backoff(attempt, visible = document.visibilityState === "visible") {
  const ceiling = Math.min(visible ? VISIBLE_CAP : 30000, 1000 * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const PING_EVERY = 25000;   // ms of silence before we check the line ourselves
const PONG_WITHIN = 10000;  // ms the server has to answer before we call the socket dead
const CROWDED_RETRY = 30000;  // ms to wait when the user already holds the most sockets

// One WebSocket to /ws that reconnects by itself and reports its state:
// "connecting", "open" (after hello), "offline" (waiting to retry) or "ended" (logged out).
export class Socket {
  constructor(url, {onFrame, onState}) {
    this.url = url;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.deadTimer = null;
    this.state = "idle";
    this.retryAt = 0;
    // The network is back, or someone looks at the tab again: no reason to wait out the back-off.
    window.addEventListener("online", () => { if (this.state === "offline") { this.reconnectNow(); } });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.state === "offline") { this.reconnectNow(); }
    });
  }

  // Open the first connection.
  start() {
    this.connect();
  }

  // Whether frames can be sent right now (open and greeted).
  get isOpen() {
    return this.state === "open" && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  // Report a state change to the page (banner, title...).
  setState(state) {
    this.state = state;
    this.onState(state, this);
  }

  // Open a socket and wire its events.
  connect() {
    clearTimeout(this.retryTimer);
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => this.receive(ws, event);
    ws.onclose = (event) => this.closed(ws, event);
  }

  // Parse one frame; "hello" means the connection is ready and the back-off starts over.
  receive(ws, event) {
    if (ws !== this.ws) { return; }
    this.heard();
    let frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (frame.kind === Kind.HELLO) {
      this.attempt = 0;
      this.setState("open");
    }
    this.onFrame(frame);
  }

  // The socket ended: log in again if the session is over, else retry after a back-off.
  closed(ws, event) {
    if (ws !== this.ws) { return; }
    this.ws = null;
    this.stopHeartbeat();
    if (event.code === Close.LOGGED_OUT) {
      this.setState("ended");
      return;
    }
    // Too many tabs open: trying again at once would only be refused again.
    this.scheduleReconnect(event.code === Close.TOO_MANY_SOCKETS ? CROWDED_RETRY : 0);
  }

  // Wait (with back-off and jitter) and connect again; now and then ask whether we are still logged in.
  scheduleReconnect(atLeast = 0) {
    const delay = Math.max(atLeast, backoff(this.attempt));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("offline");
    this.retryTimer = setTimeout(() => this.connect(), delay);
    if (this.attempt >= 3) { this.checkSession(); }
  }

  // A socket refused before the upgrade looks like any network error: /api/me tells a 401 apart.
  async checkSession() {
    try {
      const response = await fetch("/api/me", {credentials: "same-origin"});
      if (response.status === 401) {
        clearTimeout(this.retryTimer);
        this.setState("ended");
      }
    } catch (e) { /* the server is down: keep retrying */ }
  }

  // Skip the wait (the "Reconnect now" button, or the browser coming back online).
  reconnectNow() {
    clearTimeout(this.retryTimer);
    if (this.ws) { return; }
    this.connect();
  }

  // Send a frame if the socket is open; false means it was not sent.
  send(frame) {
    if (!this.isOpen) { return false; }
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // Something arrived: the line is alive; check it again after a quiet spell.
  heard() {
    clearTimeout(this.deadTimer);
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => this.probe(), PING_EVERY);
  }

  // Ping a quiet line; no answer in time means a dead socket the browser has not noticed.
  probe() {
    if (!this.send({type: Frame.PING})) { return; }
    this.deadTimer = setTimeout(() => this.abandon(), PONG_WITHIN);
  }

  // Give up on a silent socket at once (its close handshake could take minutes) and reconnect.
  abandon() {
    const dead = this.ws;
    if (!dead) { return; }
    this.ws = null;   // its late close event is ignored
    this.stopHeartbeat();
    dead.close();
    this.scheduleReconnect();
  }

  // Stop the liveness timers of a closed socket.
  stopHeartbeat() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.deadTimer);
  }
}

// The WebSocket URL of this site (ws: or wss: as the page itself).
export function socketUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
