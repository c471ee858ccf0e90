"""JSON Schemas of the message endpoints' bodies: signals, queries and waitpoint tokens."""

from __future__ import annotations

from ..tokens import TOKEN_STATUSES
from .schemas import ANY, BOOL, IN_ANY, STR, STR_OR_NULL, TIME, TIME_OR_NULL, Schema, _list, _obj

__all__ = ["MESSAGE_SCHEMAS", "SIGNAL_NAME_PATTERN"]

#: what runtime/ids.py NAME_RE accepts, in JSON Schema's dialect
SIGNAL_NAME_PATTERN = "^[A-Za-z0-9_.:-]{1,100}$"

SIGNAL_REQUEST = _obj({"name": {"type": "string", "pattern": SIGNAL_NAME_PATTERN}, "data": IN_ANY}, ["name"],
                      extra=False, description="A signal for the run's ctx.wait_for_signal(name); data is any JSON "
                      "(at most max_input_bytes).")
SIGNAL_RESPONSE = _obj({"run_id": STR, "name": STR, "delivered": {
    **BOOL, "description": "true: the run was waiting for it and resumes now; false: kept for its next wait"}})
RUN_QUERY = _obj({"run_id": STR, "state": ANY, "updated_at": TIME_OR_NULL},
                 description="The state the run's handler last published with ctx.set_state (null: none yet).")
TOKEN = _obj({
    "id": STR, "run_id": STR, "project": STR, "status": {"type": "string", "enum": list(TOKEN_STATUSES)},
    "url": {**STR_OR_NULL, "description": "pre-signed callback URL (null when the server has no token_secret)"},
    "tags": {"type": "array", "items": STR}, "created_at": TIME, "expires_at": TIME, "settled_at": TIME_OR_NULL,
    "settled_by": STR_OR_NULL, "output": ANY,
}, description="A waitpoint token (ctx.create_token).")
TOKEN_SETTLED = _obj({"id": STR, "status": STR, "run_id": STR, "resumed": {
    **BOOL, "description": "true: the run was waiting for the token and resumes now"}})

MESSAGE_SCHEMAS: dict[str, Schema] = {
    "SignalRequest": SIGNAL_REQUEST, "SignalResponse": SIGNAL_RESPONSE, "RunQuery": RUN_QUERY, "Token": TOKEN,
    "TokenList": _list("Token"), "TokenData": {**IN_ANY, "description": "Any JSON: what wait_for_token returns"},
    "TokenSettled": TOKEN_SETTLED,
}
