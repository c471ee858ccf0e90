"""JSON Schemas of the webhook endpoints (runtime/webhooks.py, runtime/deliveries.py)."""

from __future__ import annotations

from ..deliveries import STATUSES
from ..webhooks import EVENTS, MAX_URL_LEN, SECRET_PATTERN, URL_PATTERN
from .schemas import INT, INT_OR_NULL, STR, STR_OR_NULL, TIME, TIME_OR_NULL, Schema, _list, _obj

__all__ = ["HOOK_SCHEMAS"]

_EVENTS = ", ".join(EVENTS)
URL: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_URL_LEN, "pattern": URL_PATTERN,
               "description": "absolute http(s) URL (printable ASCII, no spaces)"}
EVENT_LIST: Schema = {"type": "array", "minItems": 1, "maxItems": 20,
                      "items": {"type": "string", "enum": list(EVENTS)}, "description": f"any of {_EVENTS}"}
SECRET: Schema = {"type": "string", "pattern": SECRET_PATTERN,
                  "description": "HMAC-SHA256 signing key (16-256 printable ASCII); generated when left out"}
DESCRIPTION: Schema = {"type": "string", "maxLength": 500}

WEBHOOK = _obj({
    "id": STR, "url": STR, "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)}},
    "description": STR, "created_at": TIME, "secret_hint": {**STR, "description": "the secret's first characters"},
}, description="A webhook: where outcomes of the project's runs are POSTed, and which.")
WEBHOOK_CREATED = _obj({
    **WEBHOOK["properties"], "secret": {**STR, "description": "the signing secret, shown only here"},
}, description="A new webhook, with its signing secret (shown only in this response).")
WEBHOOK_REQUEST = _obj({"url": URL, "events": EVENT_LIST, "secret": SECRET, "description": DESCRIPTION},
                       ["url", "events"], extra=False)
WEBHOOK_UPDATE = _obj({"url": URL, "events": EVENT_LIST, "secret": SECRET, "description": DESCRIPTION}, [],
                      extra=False, description="The fields to change; the others stay.")
DELIVERY = _obj({
    "id": STR, "webhook_id": STR, "event": STR, "run_id": STR,
    "status": {"type": "string", "enum": list(STATUSES)},
    "attempts": {**INT, "description": "attempts since it was created or last redelivered"},
    "last_error": {**STR_OR_NULL, "description": "why the last attempt failed"},
    "last_status_code": {**INT_OR_NULL, "description": "the endpoint's HTTP status at the last attempt"},
    "created_at": TIME_OR_NULL, "updated_at": TIME_OR_NULL, "delivered_at": TIME_OR_NULL,
    "next_attempt_at": TIME_OR_NULL,
}, description="One delivery of one run outcome to a webhook.")
WEBHOOK_DELETED = _obj({"id": STR, "deleted": {"type": "boolean"}})

HOOK_SCHEMAS: dict[str, Schema] = {
    "Webhook": WEBHOOK, "WebhookCreated": WEBHOOK_CREATED, "WebhookList": _list("Webhook"),
    "WebhookRequest": WEBHOOK_REQUEST, "WebhookUpdate": WEBHOOK_UPDATE, "WebhookDelivery": DELIVERY,
    "WebhookDeliveryList": _list("WebhookDelivery"), "WebhookDeleted": WEBHOOK_DELETED,
}
