// The names of the wire protocol (docs/protocol.md 3.2 and 3.3) that the browser client uses:
// what each client frame type number means, the server's frame kinds, error and notice
// names, and which refusals are worth sending again.

// The `type` of a client -> server frame.
export const Frame = Object.freeze({
  PING: 0,
  PRIVATE_MESSAGE: 1,
  FETCH_UNREAD: 2,
  HISTORY: 3,
  GROUP_MESSAGE: 4,
  MARK_READ: 5,
  TYPING: 6,
  SYNC: 7,
  EDIT: 8,
  RECALL: 9,
  REACT: 10,
});

// The `kind` of a server -> client frame.
export const Kind = Object.freeze({
  HELLO: "hello",
  PONG: "pong",
  MESSAGE: "message",
  ACK: "ack",
  ERROR: "error",
  READ: "read",
  TYPING: "typing",
  SYNC: "sync",
  NOTICE: "notice",
  CATCH_UP: "catch_up",  // live frames may have been missed: answer with SYNC
  UPDATE: "update",      // a message was edited, taken back or reacted to
});

// Close codes the server uses that the client treats apart.
export const Close = Object.freeze({
  LOGGED_OUT: 1008,        // the session or token was revoked
  TOO_MANY_SOCKETS: 4008,  // the user already holds the most sockets allowed
});

// The `error` of an error frame (also the `code` of an HTTP error body).
export const ErrorName = Object.freeze({
  BAD_REQUEST: "bad_request",
  FORBIDDEN: "forbidden",
  NOT_FOUND: "not_found",
  STRANGER_LIMIT: "stranger_limit",
  RATE_LIMITED: "rate_limited",
  SERVER_BUSY: "server_busy",
});

// A conversation's `kind` in the API (and the first half of the client's conversation keys).
export const Conversation = Object.freeze({
  PRIVATE: "private",
  GROUP: "group",
});

// The `notice` of a notice frame.
export const Notice = Object.freeze({
  FOLLOW: "follow",
  GROUP_ADDED: "group_added",
  GROUP_REMOVED: "group_removed",
  GROUP_DELETED: "group_deleted",
  GROUP_INVITED: "group_invited",
});

// The error's name; for a name this client does not know (a newer server), the known name of
// its HTTP-like code, or null.
export function errorName(error) {
  if (Object.values(ErrorName).includes(error.error)) { return error.error; }
  if (error.code >= 500) { return ErrorName.SERVER_BUSY; }
  const byCode = {400: ErrorName.BAD_REQUEST, 403: ErrorName.FORBIDDEN, 404: ErrorName.NOT_FOUND,
                  429: ErrorName.RATE_LIMITED};
  return byCode[error.code] || null;
}

// When a refused message may still go through:
// "soon": the same frame again a little later (the server was busy, or we were too fast);
// "later": only once someone changes something (unblocks us, replies, follows back);
// "never": the frame itself is wrong (400, too long), forbidden (403: blocked, not a member),
// or what it names does not exist (404); only Edit or Delete make sense then.
export function retryOutlook(error) {
  switch (errorName(error)) {
    case ErrorName.SERVER_BUSY: case ErrorName.RATE_LIMITED: return "soon";
    case ErrorName.BAD_REQUEST: case ErrorName.NOT_FOUND: case ErrorName.FORBIDDEN: return "never";
    default: return "later";
  }
}
