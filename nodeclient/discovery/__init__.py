"""Finding a node to pay: the metadata a node publishes, probes of its relay, and the choice among nodes.

``metadata`` defines the versioned document in a node's registry record (docs/PROTOCOL.md, "Node
metadata"); ``probe`` measures a relay endpoint with PINGs before any hello; ``catalog`` lists every
registered node with its status, stake, price and measured quality, filters and ranks them by policy.
``probe`` (the relay wire code) is imported on its own, so listing nodes stays light.
"""

from __future__ import annotations

from nodeclient.discovery.catalog import (
    NODE_STATUSES,
    POLICIES,
    NodeFilter,
    NodeListing,
    Pick,
    load_listings,
    pick_node,
    probe_listings,
    registered_nodes,
    sort_listings,
)
from nodeclient.discovery.metadata import (
    Endpoint,
    MetadataError,
    MetadataReading,
    NodeMetadata,
    build_metadata,
    check_metadata_uri,
    encode_metadata_uri,
    parse_endpoint,
    read_metadata_uri,
)

__all__ = [
    "NODE_STATUSES",
    "POLICIES",
    "Endpoint",
    "MetadataError",
    "MetadataReading",
    "NodeFilter",
    "NodeListing",
    "NodeMetadata",
    "Pick",
    "build_metadata",
    "check_metadata_uri",
    "encode_metadata_uri",
    "load_listings",
    "parse_endpoint",
    "pick_node",
    "probe_listings",
    "read_metadata_uri",
    "registered_nodes",
    "sort_listings",
]
