"""``kuota audit replay --fetch``: download every bundle the chain names from the node that published it.

``BatchSettled`` names a batch by its ``bundleRoot``. For each node with batches in range the
auditor finds where the node publishes bundles — the ``bundles`` URL of its registry metadata, else
``--bundle-source`` — and asks ``<that URL>/0x<bundleRoot>``; the node answers with (a redirect to)
``<sha256>.json``, the content address. The bytes then go through ``verify_bundles`` like any other
bundle: the SHA-256 name, the Merkle root against the committed one, every signature.

A bundle that cannot be fetched (no endpoint, connection refused, HTTP error, too large) is an
``Unreachable`` entry naming the node, root, URL and reason; the engine reports each one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nodeclient.audit.bundles import MAX_BUNDLE_BYTES, BundleFile
from nodeclient.audit.http_get import DownloadError, get_bounded
from nodeclient.audit.metadata import MetadataUnreadable, bundles_url, read_metadata
from nodeclient.audit.replay import BatchRecord

__all__ = ["FetchOutcome", "Unreachable", "bundle_endpoints", "bundle_url", "fetch_bundles"]

log = logging.getLogger(__name__)

_METADATA_INDEX = 8  # NodeRegistry.getNode: (operator, payout, key, price, capacity, registeredAt, status, region, metadataURI)


@dataclass(frozen=True)
class Unreachable:
    """A bundle named on chain that could not be fetched, and why."""

    node: str
    root: str
    tx_hash: str
    url: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON form for the report."""
        return {"node": self.node, "root": self.root, "txHash": self.tx_hash, "url": self.url or "", "reason": self.reason}


@dataclass
class FetchOutcome:
    """What ``fetch_bundles`` got: the files, the ones it could not get, notes on unreadable metadata."""

    files: list[BundleFile]
    unreachable: list[Unreachable]
    #: node → why its metadata gave no bundles URL (the fallback, if any, was used).
    metadata_problems: dict[str, str]


def bundle_url(base: str, root: bytes) -> str:
    """The URL of the bundle with ``root`` under a node's bundles URL (with or without a trailing slash)."""
    return base.rstrip("/") + "/0x" + root.hex()


def bundle_endpoints(
    registry: Any, nodes: Iterable[str], fallback: str | None, *, timeout: float = 10.0
) -> tuple[dict[str, str | None], dict[str, str]]:
    """node → bundles URL (metadata first, then ``fallback``), and node → why its metadata did not say."""
    endpoints: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    for node in sorted(set(nodes)):
        try:
            uri = str(registry.functions.getNode(node).call()[_METADATA_INDEX])
            url = bundles_url(read_metadata(uri, timeout=timeout))
            if url is None:
                problems[node] = "its metadata has no http(s) 'bundles' URL"
        except MetadataUnreadable as exc:
            url, problems[node] = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed registry read degrades to the fallback, reported
            url, problems[node] = None, f"NodeRegistry.getNode could not be read ({str(exc)[:160]})"
        endpoints[node] = url or fallback
    return endpoints, problems


def fetch_bundles(
    batches: list[BatchRecord], endpoints: dict[str, str | None], metadata_problems: dict[str, str],
    *, timeout: float = 30.0,
) -> FetchOutcome:
    """Fetch the bundle of every batch from its node's endpoint; one download per distinct URL."""
    outcome = FetchOutcome(files=[], unreachable=[], metadata_problems=dict(metadata_problems))
    fetched: dict[str, str | None] = {}  # url → None when fetched, else the reason it was not
    for batch in batches:
        root = "0x" + batch.root.hex()
        base = endpoints.get(batch.node)
        if base is None:
            why = metadata_problems.get(batch.node, "its metadata has no 'bundles' URL")
            outcome.unreachable.append(Unreachable(
                batch.node, root, batch.tx_hash, None, f"no bundle endpoint: {why}, and no --bundle-source was given"
            ))
            continue
        url = bundle_url(base, batch.root)
        if url not in fetched:
            try:
                final_url, data = get_bounded(url, MAX_BUNDLE_BYTES, timeout)
                outcome.files.append(BundleFile(final_url, data))
                fetched[url] = None
            except DownloadError as exc:
                fetched[url] = str(exc)
                log.warning("bundle %s of node %s: %s", url, batch.node, exc)
        if fetched[url] is not None:
            outcome.unreachable.append(Unreachable(batch.node, root, batch.tx_hash, url, str(fetched[url])))
    return outcome
