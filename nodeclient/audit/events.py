"""Decode raw logs of the Kuota contracts into plain ``Event`` records, from the ABIs the client ships.

The auditor reads logs with one ``eth_getLogs`` filter over every contract address, so decoding is by
(address, topic0) and done here with eth-abi directly: no contract objects, no per-log web3 formatting
(which is an order of magnitude slower over a long history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address
from eth_utils.abi import collapse_if_tuple

from nodeclient.audit.crypto import keccak
from nodeclient.audit.errors import ChainMismatchError

__all__ = ["TRANSFER_TOPIC", "Event", "EventDecoder", "RawLog", "event_signature"]

TRANSFER_TOPIC = keccak(b"Transfer(address,address,uint256)")


@dataclass(frozen=True, slots=True)
class RawLog:
    """One log as the RPC returned it, normalised (bytes topics, int positions, lower-case hex hashes)."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded event: ``contract`` is the manifest name, ``args`` the ABI names → Python values."""

    contract: str
    name: str
    args: dict[str, Any] = field(hash=False)
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    #: The emitting contract: one manifest name can cover several addresses (a retired settlement module).
    address: str = ""

    @property
    def position(self) -> tuple[int, int]:
        """(block, logIndex): the total order of events on a chain."""
        return (self.block_number, self.log_index)

    def where(self) -> str:
        """Human locator used in every finding: ``Name@block/logIndex tx 0x…``."""
        return f"{self.contract}.{self.name} at block {self.block_number} log {self.log_index} (tx {self.tx_hash})"


def event_signature(entry: dict[str, Any]) -> str:
    """``Name(type,...)`` of an ABI event entry."""
    return f"{entry['name']}({','.join(collapse_if_tuple(p) for p in entry['inputs'])})"


_DYNAMIC = ("string", "bytes")


def _is_dynamic(kind: str) -> bool:
    return kind in _DYNAMIC or kind.endswith("]") or kind.startswith("(")


class _EventSpec:
    __slots__ = ("contract", "data_names", "data_types", "indexed", "name")

    def __init__(self, contract: str, entry: dict[str, Any]) -> None:
        self.contract = contract
        self.name = entry["name"]
        self.indexed = [(p["name"], collapse_if_tuple(p)) for p in entry["inputs"] if p.get("indexed")]
        data = [p for p in entry["inputs"] if not p.get("indexed")]
        self.data_names = [p["name"] for p in data]
        self.data_types = [collapse_if_tuple(p) for p in data]


class EventDecoder:
    """Decodes logs emitted by known contract addresses (manifest name → address, ABI per name)."""

    def __init__(
        self,
        contracts: dict[str, str],
        abis: dict[str, list[dict[str, Any]]],
        aliases: dict[str, str] | None = None,
    ) -> None:
        """``aliases`` maps further addresses to a manifest name whose ABI decodes their logs."""
        self._by_address: dict[str, dict[bytes, _EventSpec]] = {}
        self._names: dict[str, str] = {}
        for name, address in [*contracts.items(), *((n, a) for a, n in (aliases or {}).items())]:
            specs: dict[bytes, _EventSpec] = {}
            for entry in abis.get(name, []):
                if entry.get("type") == "event" and not entry.get("anonymous"):
                    specs[keccak(event_signature(entry).encode())] = _EventSpec(name, entry)
            self._by_address[address.lower()] = specs
            self._names[address.lower()] = name

    def decode(self, log: RawLog) -> Event | None:
        """Decoded event, or ``None`` for a topic0 the contract's ABI does not declare.

        Raises ``ChainMismatchError`` when a declared event's payload does not decode: the contract at
        that address is not the one the ABI describes.
        """
        specs = self._by_address.get(log.address.lower())
        if specs is None or not log.topics:
            return None
        spec = specs.get(log.topics[0])
        if spec is None:
            return None
        args: dict[str, Any] = {}
        try:
            if len(log.topics) != 1 + len(spec.indexed):
                raise ValueError(f"{len(log.topics)} topics for {len(spec.indexed)} indexed inputs")
            for (name, kind), topic in zip(spec.indexed, log.topics[1:]):
                # An indexed dynamic value is stored as its hash; keep the hash.
                args[name] = topic if _is_dynamic(kind) else abi_decode([kind], topic)[0]
            if spec.data_types:
                args.update(zip(spec.data_names, abi_decode(spec.data_types, log.data)))
        except Exception as exc:  # noqa: BLE001 - eth-abi raises several types; all mean "not this ABI"
            raise ChainMismatchError(
                f"log {log.log_index} of block {log.block_number} from {spec.contract} ({log.address}) does not "
                f"decode as {spec.name}: {exc}; the contract there is not the one the shipped ABI describes"
            ) from None
        for key, value in args.items():
            if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
                args[key] = to_checksum_address(value)
        return Event(
            contract=spec.contract,
            name=spec.name,
            args=args,
            block_number=log.block_number,
            block_hash=log.block_hash,
            tx_hash=log.tx_hash,
            tx_index=log.tx_index,
            log_index=log.log_index,
            address=to_checksum_address(log.address),
        )
