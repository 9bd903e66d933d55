"""The baseline: a bare flask-sock relay under the same gunicorn gevent worker.

No database, no Redis, no authentication (the token is the user id), and
flask-sock / simple-websocket with their defaults: a reader thread (greenlet)
per socket, permessage-deflate accepted when offered, ``socket.send`` straight
from the sender's greenlet. That is the floor of our stack as people use it,
so the chat server's figures are reported as ratios to this one's.

    gunicorn -c bench/relay_gunicorn.conf.py bench.relay_app:app

Frames: ``{"type":1,"recipient_id":U,"content":..,"client_id":..}`` goes to every
socket of user U; ``{"type":4,"recipient_id":G,..}`` to every member of group G
(members say which groups they are in with ``?groups=1,2`` when they connect);
the sender gets ``{"kind":"ack","client_id":..}``; ``{"type":0}`` gets a pong.
It uses orjson, as the chat server does, so JSON costs the same on both sides.
"""
from gevent import monkey

monkey.patch_all()

import orjson  # noqa: E402
from flask import Flask, request  # noqa: E402
from flask_sock import Sock  # noqa: E402

app = Flask(__name__)
sock = Sock(app)

users: dict = {}   # user id -> set of sockets
groups: dict = {}  # group id -> set of user ids


@app.get("/healthz")
def healthz():
    """For the benchmark's start-up check."""
    return {"ok": True, "connections": sum(len(s) for s in users.values())}


def _deliver(uid: int, frame: str, skip) -> None:
    for peer in list(users.get(uid, ())):
        if peer is not skip:
            try:
                peer.send(frame)
            except Exception:  # a peer that is going away
                pass


@sock.route("/ws")
def relay(ws):
    """One connection: route each frame to its recipients and ack it."""
    uid = int(request.args["token"])
    gids = [int(g) for g in request.args.get("groups", "").split(",") if g]
    users.setdefault(uid, set()).add(ws)
    for gid in gids:
        groups.setdefault(gid, set()).add(uid)
    try:
        while True:
            msg = orjson.loads(ws.receive())
            kind = msg.get("type")
            if kind == 1 or kind == 4:
                target = msg["recipient_id"]
                frame = orjson.dumps({
                    "kind": "message", "sender_id": uid,
                    "recipient_id": target if kind == 1 else None,
                    "group_id": target if kind == 4 else None,
                    "content": msg["content"], "client_id": msg.get("client_id")}).decode()
                if kind == 1:
                    _deliver(target, frame, ws)
                else:
                    for member in list(groups.get(target, ())):
                        _deliver(member, frame, ws)
                ws.send(orjson.dumps({"kind": "ack", "code": 200,
                                      "client_id": msg.get("client_id")}).decode())
            elif kind == 0:
                ws.send('{"kind":"pong","code":200}')
    finally:
        conns = users.get(uid)
        if conns is not None:
            conns.discard(ws)
            if not conns:
                del users[uid]
                for gid in gids:
                    members = groups.get(gid)
                    if members is not None:
                        members.discard(uid)
