"""The node metadata document: where a node's relay listens, kept inline in its registry record.

A node's ``metadataURI`` in NodeRegistry may be a ``data:application/json`` URI (RFC 2397) holding a
versioned JSON document, so a node needs no web server to be found::

    {"v":1,"relay":["203.0.113.7:7447"],"region":"eu-west","pricePerGiB":"1000000",
     "bundles":"http://203.0.113.7:8080/bundles/"}

``pricePerGiB`` is in payment-token base units, a decimal string (a JSON number loses precision past
2**53 in most languages); an integer is read too. The registry's own ``pricePerGiB`` and ``region``
stay authoritative (the relay charges the registered price); the document repeats them so it can be
read on its own, and a disagreement is reported. Writers are strict (``build_metadata``,
``check_metadata_uri`` raise ``MetadataError`` naming the value); readers are lenient
(``read_metadata_uri`` keeps what is valid and lists every problem), because one node's broken
record must not hide every other node. docs/PROTOCOL.md, "Node metadata".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from nodeclient.errors import ConfigError

__all__ = [
    "MAX_METADATA_URI_BYTES",
    "MAX_RELAYS",
    "METADATA_VERSION",
    "Endpoint",
    "MetadataError",
    "MetadataReading",
    "NodeMetadata",
    "build_metadata",
    "check_metadata_uri",
    "decode_data_uri",
    "encode_metadata_uri",
    "parse_endpoint",
    "read_metadata_uri",
]

METADATA_VERSION = 1
MAX_METADATA_URI_BYTES = 256
"""NodeRegistry.MAX_METADATA_URI_LENGTH: the registry reverts on anything longer."""
MAX_RELAYS = 4
MAX_REGION_BYTES = 32
"""NodeRegistry.MAX_REGION_LENGTH."""

_MEDIA_TYPE = "application/json"
_KEYS = frozenset({"v", "relay", "region", "pricePerGiB", "bundles"})
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# RFC 3986 reserved characters stay readable in the URI; JSON's quotes and braces are escaped.
_URI_SAFE = ":/,[]@!$&'()*+;="


class MetadataError(ConfigError):
    """A node metadata document or URI to be written is invalid."""

    def __init__(self, what: str, value: object, problem: str) -> None:
        self.what = what
        self.value = value
        super().__init__(f"invalid node metadata {what} {value!r}: {problem}")


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """A relay endpoint, ``host:port`` (IPv6 hosts in brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NodeMetadata:
    """A v1 node metadata document."""

    relay: tuple[Endpoint, ...]
    region: str | None = None
    price_per_gib: int | None = None
    bundles: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire document (keys in the documented order; absent fields left out)."""
        doc: dict[str, Any] = {"v": METADATA_VERSION, "relay": [str(e) for e in self.relay]}
        if self.region is not None:
            doc["region"] = self.region
        if self.price_per_gib is not None:
            doc["pricePerGiB"] = str(self.price_per_gib)
        if self.bundles is not None:
            doc["bundles"] = self.bundles
        return doc


@dataclass(frozen=True, slots=True)
class MetadataReading:
    """What a reader made of one node's ``metadataURI``: the usable document, if any, and every problem."""

    uri: str
    kind: str
    """``inline`` (a data: URI), ``external`` (another URI, not fetched), or ``none`` (empty)."""
    metadata: NodeMetadata | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def relays(self) -> tuple[Endpoint, ...]:
        """The valid relay endpoints (empty when the document is missing or unusable)."""
        return self.metadata.relay if self.metadata is not None else ()

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "kind": self.kind,
            "document": self.metadata.to_json() if self.metadata is not None else None,
            "problems": list(self.problems),
        }


def parse_endpoint(text: object) -> Endpoint:
    """``host:port`` or ``[v6]:port`` with a DNS name or IP literal and a port in 1..65535."""
    if not isinstance(text, str):
        raise MetadataError("relay endpoint", text, "not a string")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise MetadataError("relay endpoint", text, "not HOST:PORT with a port in 1..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _IPV6.match(host) or ":" not in host:
            raise MetadataError("relay endpoint", text, "the bracketed host is not an IPv6 address")
    elif not _HOSTNAME.match(host):
        raise MetadataError("relay endpoint", text, "the host is not a DNS name or IPv4 address (IPv6 goes in [ ])")
    return Endpoint(host, int(port))


def _check_region(region: object) -> str:
    if not isinstance(region, str) or not _REGION.match(region) or len(region.encode()) > MAX_REGION_BYTES:
        raise MetadataError(
            "region", region, f"use letters, digits, '.', '_' or '-', at most {MAX_REGION_BYTES} bytes"
        )
    return region


def _check_price(price: object) -> int:
    # bool is an int subclass: True is not a price.
    if isinstance(price, str) and price.isdigit():
        price = int(price)
    if not isinstance(price, int) or isinstance(price, bool) or not 0 <= price < 2**96:
        raise MetadataError("pricePerGiB", price, "not a whole number of base units in [0, 2**96)")
    return price


def _check_bundles(url: object) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise MetadataError("bundles", url, "not an http:// or https:// URL")
    return url  # type: ignore[return-value]


def _check_relays(relays: object) -> tuple[Endpoint, ...]:
    if not isinstance(relays, list) or not 1 <= len(relays) <= MAX_RELAYS:
        raise MetadataError("relay", relays, f"give 1 to {MAX_RELAYS} HOST:PORT endpoints")
    endpoints = tuple(parse_endpoint(text) for text in relays)
    if len(set(endpoints)) != len(endpoints):
        raise MetadataError("relay", relays, "an endpoint is listed twice")
    return endpoints


def build_metadata(
    relays: list[str], *, region: str | None, price_per_gib: int | None, bundles: str | None = None
) -> NodeMetadata:
    """A v1 document from an operator's options, every field checked (``MetadataError`` names the value)."""
    return NodeMetadata(
        relay=_check_relays(list(relays)),
        region=_check_region(region) if region is not None else None,
        price_per_gib=_check_price(price_per_gib) if price_per_gib is not None else None,
        bundles=_check_bundles(bundles) if bundles is not None else None,
    )


def encode_metadata_uri(metadata: NodeMetadata) -> str:
    """The ``data:application/json,`` URI of ``metadata``; refused if the registry could not store it."""
    text = json.dumps(metadata.to_json(), separators=(",", ":"))
    uri = f"data:{_MEDIA_TYPE}," + quote(text, safe=_URI_SAFE)
    if len(uri.encode()) > MAX_METADATA_URI_BYTES:
        raise MetadataError(
            "URI", uri, f"{len(uri.encode())} bytes, the registry stores at most {MAX_METADATA_URI_BYTES}; "
            "list fewer relay endpoints or a shorter bundles URL"
        )
    return uri


def check_metadata_uri(uri: str, *, region: str, price_per_gib: int) -> None:
    """Refuse a ``metadataURI`` to be written that readers would find broken or inconsistent.

    Only inline documents are checked for content; another URI is checked only for the registry's
    length limit (this client does not fetch it).
    """
    if len(uri.encode()) > MAX_METADATA_URI_BYTES:
        raise MetadataError("URI", uri, f"{len(uri.encode())} bytes, the registry stores at most {MAX_METADATA_URI_BYTES}")
    reading = read_metadata_uri(uri, region=region, price_per_gib=price_per_gib)
    if reading.kind == "inline" and reading.problems:
        raise MetadataError("URI", uri, "; ".join(reading.problems))


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a ``data:application/json`` URI (percent- or base64-encoded); ValueError says why not."""
    header, sep, payload = uri[len("data:"):].partition(",")
    if not sep:
        raise ValueError("no ',' between the media type and the data")
    media, *params = [part.strip() for part in header.split(";")]
    if media.lower() != _MEDIA_TYPE:
        raise ValueError(f"media type {media!r} is not {_MEDIA_TYPE}")
    if "base64" in (p.lower() for p in params):
        try:
            return base64.b64decode(unquote_to_bytes(payload), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64: {exc}") from None
    return unquote_to_bytes(payload)


def read_metadata_uri(uri: str, *, region: str | None = None, price_per_gib: int | None = None) -> MetadataReading:
    """Read a node's ``metadataURI`` leniently: never raises; valid fields are kept, problems listed.

    ``region`` and ``price_per_gib`` are the registry's figures, compared with the document's.
    """
    if not uri:
        return MetadataReading(uri, "none", problems=("no metadata URI: the node publishes no relay endpoint",))
    if not uri.lower().startswith("data:"):
        scheme = uri.split(":", 1)[0] if ":" in uri else uri[:16]
        return MetadataReading(uri, "external", problems=(f"metadata URI scheme {scheme!r} is not fetched; only data:{_MEDIA_TYPE} is read",))
    try:
        doc = json.loads(decode_data_uri(uri).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return MetadataReading(uri, "inline", problems=(f"metadata is not a JSON data URI: {exc}",))
    if not isinstance(doc, dict):
        return MetadataReading(uri, "inline", problems=(f"metadata document is a {type(doc).__name__}, not an object",))
    if doc.get("v") != METADATA_VERSION:
        return MetadataReading(uri, "inline", problems=(f"metadata version {doc.get('v')!r} is not supported (this client reads v1)",))
    problems: list[str] = []
    metadata = _lenient_document(doc, problems)
    if region is not None and metadata.region is not None and metadata.region != region:
        problems.append(f"metadata region {metadata.region!r} differs from the registry's {region!r} (the registry's counts)")
    if price_per_gib is not None and metadata.price_per_gib is not None and metadata.price_per_gib != price_per_gib:
        problems.append(
            f"metadata pricePerGiB {metadata.price_per_gib} differs from the registry's {price_per_gib} (the relay charges the registry's)"
        )
    return MetadataReading(uri, "inline", metadata, tuple(problems))


def _lenient_field(doc: dict[str, Any], key: str, check: Any, problems: list[str]) -> Any:
    if key not in doc:
        return None
    try:
        return check(doc[key])
    except MetadataError as exc:
        problems.append(str(exc))
        return None


def _lenient_document(doc: dict[str, Any], problems: list[str]) -> NodeMetadata:
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        problems.append(f"unknown metadata keys ignored: {', '.join(unknown)}")
    raw = doc.get("relay")
    relays: list[Endpoint] = []
    if not isinstance(raw, list) or not raw:
        problems.append(f"invalid node metadata relay {raw!r}: no list of HOST:PORT endpoints")
    else:
        for text in raw[:MAX_RELAYS]:
            try:
                endpoint = parse_endpoint(text)
            except MetadataError as exc:
                problems.append(str(exc))
                continue
            if endpoint not in relays:
                relays.append(endpoint)
        if len(raw) > MAX_RELAYS:
            problems.append(f"{len(raw) - MAX_RELAYS} relay endpoints past the first {MAX_RELAYS} ignored")
    return NodeMetadata(
        relay=tuple(relays),
        region=_lenient_field(doc, "region", _check_region, problems),
        price_per_gib=_lenient_field(doc, "pricePerGiB", _check_price, problems),
        bundles=_lenient_field(doc, "bundles", _check_bundles, problems),
    )
