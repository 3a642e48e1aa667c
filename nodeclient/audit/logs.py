"""Read event history from an RPC endpoint whatever range limits it enforces, and pin block hashes.

``LogFetcher`` reads the audited contracts' logs with the client's one adaptive ``eth_getLogs``
reader (:mod:`nodeclient.chain.getlogs`: spans shrink on provider limits and grow on success);
when even one block cannot be read the audit stops with an input error instead of reporting on a
partial history.

``BlockIndex`` remembers the hash and timestamp of every block the audit relies on, and checks that
every log it was given came from that same block: a hash that changes mid-audit means a reorg, and
the audit refuses to report rather than mix two chains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from nodeclient.audit.errors import LogRangeError, ReorgDuringFetchError, RpcUnavailableError
from nodeclient.audit.events import RawLog
from nodeclient.chain.getlogs import (
    AdaptiveLogReader,
    FetchStats,
    LogQueryError,
    classify_rpc_error,
    short_reason,
)
from nodeclient.chain.rpc import endpoint_of, is_transient

__all__ = ["BlockIndex", "FetchStats", "LogFetcher", "classify_rpc_error", "rpc_call"]

log = logging.getLogger(__name__)


def rpc_call(w3: Web3, method: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (one RPC request); a transport fault left after the connection's retries is an input error.

    The retries themselves are the connection's (:func:`nodeclient.chain.rpc.connect`), the one
    policy for every reader of the chain.
    """
    try:
        return fn()
    except Exception as exc:
        if is_transient(exc) or isinstance(exc, (ConnectionError, TimeoutError)):
            raise RpcUnavailableError(endpoint_of(w3), method, short_reason(exc)) from None
        raise


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text.lower() if text.startswith("0x") else "0x" + text.lower()


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _normalise(entry: Any) -> RawLog:
    return RawLog(
        address=Web3.to_checksum_address(entry["address"]),
        topics=tuple(_to_bytes(t) for t in entry["topics"]),
        data=_to_bytes(entry["data"]),
        block_number=int(entry["blockNumber"]),
        block_hash=_hex(entry["blockHash"]),
        tx_hash=_hex(entry["transactionHash"]),
        tx_index=int(entry["transactionIndex"]),
        log_index=int(entry["logIndex"]),
    )


class LogFetcher:
    """``eth_getLogs`` of the audited contracts over any range (see :class:`AdaptiveLogReader`)."""

    def __init__(self, w3: Web3, **settings: Any) -> None:
        """``settings`` are :class:`AdaptiveLogReader`'s (spans, failures, back-off)."""
        self._w3 = w3
        self._reader = AdaptiveLogReader(**settings)

    @property
    def stats(self) -> FetchStats:
        """How the history was read so far."""
        return self._reader.stats

    def get_logs(
        self, addresses: Sequence[str], from_block: int, to_block: int, topics: list[Any] | None = None
    ) -> list[RawLog]:
        """Every log of ``addresses`` (and ``topics``) in ``[from_block, to_block]``, ordered by position."""

        def fetch(start: int, end: int) -> list[Any]:
            params: dict[str, Any] = {"address": list(addresses), "fromBlock": start, "toBlock": end}
            if topics is not None:
                params["topics"] = topics
            return list(self._w3.eth.get_logs(params))  # type: ignore[arg-type]

        try:
            entries = self._reader.read(fetch, from_block, to_block)
        except LogQueryError as exc:
            if exc.kind == "transient":
                raise RpcUnavailableError(endpoint_of(self._w3), "eth_getLogs", exc.reason) from None
            raise LogRangeError(exc.from_block, exc.to_block, exc.reason) from None
        out = [_normalise(e) for e in entries]
        out.sort(key=lambda r: (r.block_number, r.log_index))
        return out


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What the audit needs of a block."""

    number: int
    hash: str
    timestamp: int


class BlockIndex:
    """Hash and timestamp of every block the audit used; detects a reorg between two reads."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._blocks: dict[int, BlockHeader] = {}

    def header(self, number: int) -> BlockHeader:
        """The block's header, read once and then remembered."""
        cached = self._blocks.get(number)
        if cached is not None:
            return cached
        block = rpc_call(self._w3, "eth_getBlockByNumber", lambda: self._w3.eth.get_block(number))
        header = BlockHeader(number=number, hash=_hex(block["hash"]), timestamp=int(block["timestamp"]))
        self._blocks[number] = header
        return header

    def prefetch(self, numbers: Sequence[int], *, batch_size: int = 100) -> None:
        """Read many headers with JSON-RPC batches; a provider that refuses batches is read one by one."""
        todo = sorted(set(numbers) - set(self._blocks))
        for i in range(0, len(todo), batch_size):
            part = todo[i : i + batch_size]
            try:
                with self._w3.batch_requests() as batch:
                    for n in part:
                        batch.add(self._w3.eth.get_block(n))
                    blocks = batch.execute()
                for n, block in zip(part, blocks, strict=True):
                    if int(block["number"]) != n:
                        raise ValueError(f"batch answered block {block['number']} for {n}")
                    self._blocks[n] = BlockHeader(number=n, hash=_hex(block["hash"]), timestamp=int(block["timestamp"]))
            except Exception as exc:  # noqa: BLE001 - batches are optional for providers: fall back, never fail on them
                log.info("batched eth_getBlockByNumber refused (%s); reading %d headers one by one", short_reason(exc), len(part))
                for n in part:
                    self.header(n)

    def check_log(self, raw: RawLog) -> None:
        """Refuse a log whose block hash differs from the header the audit pinned for its block."""
        header = self.header(raw.block_number)
        if header.hash != raw.block_hash:
            raise ReorgDuringFetchError(raw.block_number, header.hash, raw.block_hash)

    def recheck(self, number: int) -> None:
        """Re-read block ``number`` and refuse if its hash changed since it was pinned."""
        pinned = self.header(number)
        block = rpc_call(self._w3, "eth_getBlockByNumber", lambda: self._w3.eth.get_block(number))
        if _hex(block["hash"]) != pinned.hash:
            raise ReorgDuringFetchError(number, pinned.hash, _hex(block["hash"]))

    def used(self) -> list[BlockHeader]:
        """Every pinned block, in number order."""
        return [self._blocks[n] for n in sorted(self._blocks)]
