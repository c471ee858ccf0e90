"""The message endpoints of the route table: signals and queries of a run, waitpoint tokens.

A token's callback URL needs no API key: its signature (HMAC-SHA256 of the token
id under ``token_secret``) is what authorises it, so it can be handed to a third
party or put in an email.
"""

from __future__ import annotations

from ..tokens import TOKEN_STATUSES
from .handlers_messages import (
    h_complete_token,
    h_expire_token,
    h_get_token,
    h_list_tokens,
    h_query,
    h_signal,
    h_token_callback,
)
from .routing import Param, Route
from .run_helpers import ID_VIEW, RUN_ID

__all__ = ["MESSAGE_ROUTES"]

_T = "Waitpoint tokens"
TOKEN_ID = Param("token_id", {"type": "string", "pattern": "^wpt_[0-9a-f]{26}(~[0-9]{1,6})?$"}, "The token's id",
                 location="path", required=True)
SIGNATURE = Param("signature", {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                  "The callback URL's signature", location="path", required=True)
_SETTLED: dict[int, tuple[str, str | None]] = {200: ("Settled", "TokenSettled")}
_SETTLE_ERRORS = (404, 409, 410)

MESSAGE_ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/runs/{run_id}/signals", h_signal, "signalRun", "Send a signal to a run", "Runs",
          "Delivered to the run's ctx.wait_for_signal(name): at once when it waits for the name (it resumes), "
          "else kept in the run's buffer (at most signal_buffer_max) for its next wait for the name, oldest "
          "first, each signal once. 409 already_finished for a finished run, signal_buffer_full when the buffer "
          "is full.", params=(RUN_ID, ID_VIEW), body="SignalRequest", body_required=True,
          responses={200: ("Delivered or kept", "SignalResponse")}, errors=(404, 409)),
    Route("GET", "/v1/runs/{run_id}/query", h_query, "queryRun", "Read the state a run publishes", "Runs",
          "The latest value the run's handler published with ctx.set_state (while it runs, waits, or after it "
          "finished); state null when it published none. GET /v1/runs/{run_id}/state is Strait's execution "
          "state, a different thing.", params=(RUN_ID, ID_VIEW), responses={200: ("The published state", "RunQuery")},
          errors=(404,)),
    Route("GET", "/v1/tokens", h_list_tokens, "listTokens", "List waitpoint tokens", _T,
          "The caller's project's tokens, newest first; an open token past its timeout is expired. At most "
          "api_scan_limit of the newest tokens of each partition are examined.",
          params=(Param("status", {"type": "string", "enum": list(TOKEN_STATUSES)}, "Only tokens in this status"),
                  Param("tags", {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128},
                                 "minItems": 1, "maxItems": 10}, "Comma-separated tags a token must all carry"),
                  Param("run_id", {"type": "string", "minLength": 1, "maxLength": 132}, "Tokens of this run"),
                  Param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        "Most tokens returned")),
          responses={200: ("Tokens", "TokenList")}),
    Route("GET", "/v1/tokens/{token_id}", h_get_token, "getToken", "Get a waitpoint token", _T,
          params=(TOKEN_ID,), responses={200: ("The token", "Token")}, errors=(404,)),
    Route("POST", "/v1/tokens/{token_id}/complete", h_complete_token, "completeToken", "Complete a waitpoint token",
          _T, "The JSON body (null when empty) is what the run's ctx.wait_for_token returns. A token settles once: "
          "409 already_completed after a completion, 410 token_expired after its timeout or an expiry.",
          params=(TOKEN_ID,), body="TokenData", responses=_SETTLED, errors=_SETTLE_ERRORS),
    Route("POST", "/v1/tokens/{token_id}/expire", h_expire_token, "expireToken", "Expire a waitpoint token", _T,
          "The run's ctx.wait_for_token raises WaitTimeout now.", params=(TOKEN_ID,), responses=_SETTLED,
          errors=_SETTLE_ERRORS),
    Route("POST", "/v1/tokens/{token_id}/callback/{signature}", h_token_callback, "tokenCallback",
          "Complete a waitpoint token through its callback URL", _T,
          "The pre-signed URL ctx.create_token returns: no API key, the signature authorises it (403 "
          "bad_signature otherwise, also when the server has no token_secret). Otherwise as "
          "POST /v1/tokens/{token_id}/complete.", params=(TOKEN_ID, SIGNATURE), body="TokenData", auth=False,
          responses=_SETTLED, errors=(403, *_SETTLE_ERRORS)),
)
