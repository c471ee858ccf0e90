"""The webhook endpoints of the route table: a project's outgoing webhooks and their deliveries."""

from __future__ import annotations

from ..deliveries import STATUSES
from .handlers_webhooks import (
    h_create_webhook,
    h_delete_webhook,
    h_get_webhook,
    h_list_deliveries,
    h_list_webhooks,
    h_redeliver,
    h_update_webhook,
)
from .routing import Param, Route

__all__ = ["HOOK_ROUTES"]

WEBHOOK_ID = Param("webhook_id", {"type": "string", "pattern": "^wh_[0-9a-f]{20}$"}, "The webhook's id",
                   location="path", required=True)
DELIVERY_ID = Param("delivery_id", {"type": "string", "pattern": "^whd_[0-9a-f]{24}$"}, "The delivery's id",
                    location="path", required=True)
_W = "Webhooks"
_NF = (404,)

HOOK_ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/webhooks", h_list_webhooks, "listWebhooks", "List webhooks", _W,
          "The caller's project's webhooks, oldest first (secrets are not shown).",
          responses={200: ("Webhooks", "WebhookList")}),
    Route("POST", "/v1/webhooks", h_create_webhook, "createWebhook", "Register a webhook", _W,
          "Outcomes of the project's runs created from now on (events run.completed, run.failed, "
          "run.dead_lettered, run.canceled, run.expired) are POSTed to url as JSON, signed with HMAC-SHA256 "
          "(headers Baton-Webhook-Id, Baton-Webhook-Timestamp, Baton-Webhook-Signature: v1=hex of "
          "HMAC(secret, timestamp + '.' + body)), retried with exponential backoff and dead-lettered after "
          "webhook_max_attempts. The secret is in this response only. A bad URL or an unknown event answers 400 naming "
          "the field.", body="WebhookRequest", body_required=True,
          responses={201: ("Registered", "WebhookCreated")}),
    Route("GET", "/v1/webhooks/{webhook_id}", h_get_webhook, "getWebhook", "Get a webhook", _W,
          params=(WEBHOOK_ID,), responses={200: ("The webhook", "Webhook")}, errors=_NF),
    Route("PATCH", "/v1/webhooks/{webhook_id}", h_update_webhook, "updateWebhook", "Change a webhook", _W,
          "URL, events, secret or description; deliveries not yet made go to the new URL with the new secret.",
          params=(WEBHOOK_ID,), body="WebhookUpdate", body_required=True,
          responses={200: ("The webhook", "Webhook")}, errors=_NF),
    Route("DELETE", "/v1/webhooks/{webhook_id}", h_delete_webhook, "deleteWebhook", "Delete a webhook", _W,
          "Its deliveries not yet made are dead-lettered when their turn comes.", params=(WEBHOOK_ID,),
          responses={200: ("Deleted", "WebhookDeleted")}, errors=_NF),
    Route("GET", "/v1/webhooks/{webhook_id}/deliveries", h_list_deliveries, "listWebhookDeliveries",
          "List a webhook's deliveries", _W,
          "Newest first (the last 1000, kept a week after they end); status=dead_letter is the webhook's "
          "dead-letter list.",
          params=(WEBHOOK_ID, Param("status", {"type": "string", "enum": list(STATUSES)}, "Only this status"),
                  Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "Most deliveries returned")),
          responses={200: ("Deliveries", "WebhookDeliveryList")}, errors=_NF),
    Route("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", h_redeliver,
          "redeliverWebhookDelivery", "Send a delivery again", _W,
          "Due at once, with a fresh budget of webhook_max_attempts attempts, whatever its status (a "
          "dead-lettered one, or one delivered that the receiver lost).", params=(WEBHOOK_ID, DELIVERY_ID),
          responses={202: ("Queued for delivery", "WebhookDelivery")}, errors=_NF),
)
