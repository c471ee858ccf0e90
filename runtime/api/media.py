"""The API's JSON media types (one per run view) and its own response headers, shared by the server, its
OpenAPI document and the client."""

from __future__ import annotations

__all__ = ["UNANSWERED_HEADER", "is_json", "media_type"]

#: a response that leaves out partitions whose master did not answer names them here (comma-separated)
UNANSWERED_HEADER = "Baton-Unanswered-Partitions"


def media_type(view: str) -> str:
    """The Content-Type of a body rendered in ``view``: plain JSON for the native view, a JSON media
    type naming the view for the others (``application/vnd.baton.strait+json``), so that each view has
    its own schema in the OpenAPI document. JSON clients read any ``+json`` type as JSON."""
    return "application/json" if view == "native" else f"application/vnd.baton.{view}+json"


def is_json(content_type: str) -> bool:
    """Whether a Content-Type is one of the API's JSON types."""
    return content_type == "application/json" or (content_type.startswith("application/vnd.baton.")
                                                   and content_type.endswith("+json"))
