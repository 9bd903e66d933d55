"""/api/push: Web Push's key and the caller's browser subscriptions (docs/protocol.md, Attention)."""
from __future__ import annotations

from . import answers, bp
from .inputs import NewPushSubscription, PushUnsubscribe
from .operation import operation
from .request import me, services


@bp.get("/push/key")
@operation({200: answers.PushKey})
def push_key():
    """The server's VAPID public key (base64url)."""
    return services().push.public_key()


@bp.post("/push/subscriptions")
@operation({201: answers.PushSubscribed}, body=NewPushSubscription, whole=True)
def push_subscribe(body: NewPushSubscription):
    """Keep a browser's push subscription (https endpoints only)."""
    return services().push.subscribe(me(), body.endpoint, body.keys.model_dump()), 201


@bp.get("/push/subscriptions")
@operation({200: answers.PushSubscriptionList})
def push_subscriptions():
    """The caller's push subscriptions (a gone one is removed when a push finds it gone)."""
    return {"subscriptions": services().push.list_mine(me())}


@bp.delete("/push/subscriptions")
@operation({200: answers.PushUnsubscribed}, body=PushUnsubscribe, whole=True)
def push_unsubscribe(body: PushUnsubscribe):
    """Forget one of the caller's push subscriptions."""
    return services().push.unsubscribe(me(), body.endpoint)
