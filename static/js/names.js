// User names by id, for the typing indicator (typing frames carry ids only) and a private chat
// opened by its address: remembered from messages and the conversation list, otherwise looked
// up once via GET /api/users/<id>.

import {api} from "./net.js";
import {t} from "./i18n.js";

// A cache of id -> Promise of the username.
export class Names {
  constructor(me, myName) {
    this.cache = new Map([[me, Promise.resolve(myName)]]);
  }

  // Keep a name we have just seen (a message's sender_name, a list entry).
  remember(id, name) {
    if (name) { this.cache.set(id, Promise.resolve(name)); }
  }

  // The user's name (a promise); "someone" when the account cannot be found.
  get(id) {
    if (!this.cache.has(id)) {
      this.cache.set(id, api("GET", `/api/users/${id}`).then((user) => user.username, () => t("someone")));
    }
    return this.cache.get(id);
  }
}
