"""Reading another node's registry metadata, leniently: all the auditor wants from it is ``bundles``.

``NodeRegistry`` stores a metadata string per node. It may be a ``data:application/json`` URI (the
document inline, URL- or base64-encoded, read as discovery reads it), an ``http(s)://`` URL of the document, or the JSON itself.
The document is an object; its ``bundles`` key, when present, is the URL of the node's published
bundles (``.../bundles/``). Anything else in it is ignored here, and a document that cannot be read
is reported, never fatal: the auditor falls back to ``--bundle-source``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from nodeclient.audit.http_get import DownloadError, get_bounded
from nodeclient.discovery.metadata import decode_data_uri

__all__ = ["MAX_METADATA_BYTES", "MetadataUnreadable", "bundles_url", "read_metadata"]

MAX_METADATA_BYTES = 64 * 1024


class MetadataUnreadable(ValueError):
    """The metadata string names no readable JSON object; the message says why."""


def _is_http(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def _fetch(url: str, timeout: float) -> bytes:
    try:
        return get_bounded(url, MAX_METADATA_BYTES, timeout)[1]
    except DownloadError as exc:
        raise MetadataUnreadable(f"{url} {exc}") from None


def read_metadata(uri: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The metadata document ``uri`` names (inline, ``data:`` or ``http(s)://``)."""
    text = uri.strip()
    if not text:
        raise MetadataUnreadable("the node has no metadata")
    if text.startswith("data:"):
        try:
            raw = decode_data_uri(text)
        except ValueError as exc:
            raise MetadataUnreadable(f"data: URI: {exc}") from None
    elif text.startswith("{"):
        raw = text.encode("utf-8")
    elif _is_http(text):
        raw = _fetch(text, timeout)
    else:
        raise MetadataUnreadable(f"metadata {text[:80]!r} is neither JSON, a data: URI nor an http(s) URL")
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataUnreadable(f"the metadata document is larger than {MAX_METADATA_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataUnreadable(f"the metadata document is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MetadataUnreadable(f"the metadata document is a JSON {type(doc).__name__}, not an object")
    return doc


def bundles_url(doc: dict[str, Any]) -> str | None:
    """The document's ``bundles`` URL when it is an http(s) URL, else None."""
    value = doc.get("bundles")
    return value if isinstance(value, str) and _is_http(value) else None
