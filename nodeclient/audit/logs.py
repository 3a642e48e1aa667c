"""Read event history from an RPC endpoint whatever range limits it enforces, and pin block hashes.

Providers cap ``eth_getLogs`` differently (1k-10k blocks, 10k results, response bytes, time) and say
so in different words and codes. ``LogFetcher`` starts with a moderate span, halves it (or takes the
range the provider suggests) whenever an answer looks like a limit, and doubles it again after each
success, so a capped provider costs a few extra calls rather than a failed audit. Retries are bounded;
when even one block cannot be read the audit stops with an input error instead of reporting on a
partial history.

``BlockIndex`` remembers the hash and timestamp of every block the audit relies on, and checks that
every log it was given came from that same block: a hash that changes mid-audit means a reorg, and
the audit refuses to report rather than mix two chains.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from web3 import Web3
from web3.exceptions import Web3RPCError

from nodeclient.audit.errors import LogRangeError, ReorgDuringFetchError, RpcUnavailableError
from nodeclient.audit.events import RawLog

__all__ = ["BlockIndex", "FetchStats", "LogFetcher", "classify_rpc_error", "rpc_call"]

log = logging.getLogger(__name__)

# Phrases providers use for "ask for less": Alchemy ("Log response size exceeded ... block range"),
# Infura ("query returned more than 10000 results"), QuickNode ("eth_getLogs is limited to a 10,000
# range"), Ankr ("block range is too wide"), geth/erigon ("exceed maximum block range"), Cloudflare
# ("range too large"), BlastAPI ("Block range limit exceeded"), plus generic timeouts.
_LIMIT_PATTERNS = re.compile(
    r"range|limit|exceed|too (many|large|wide|big)|more than|max(imum)? .*(results|logs|blocks)"
    r"|response size|timeout|timed out|query returned",
    re.IGNORECASE,
)
# Alchemy suggests a range that will work: "this block range should work: [0x1, 0x2]".
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_LIMIT_CODES = {-32005, -32602, -32000, -32001, -32011}
_TRANSIENT_HTTP = {408, 413, 429, 500, 502, 503, 504}


def classify_rpc_error(exc: BaseException) -> str:
    """``"limit"`` (ask for a smaller range), ``"transient"`` (retry), or ``"fatal"``."""
    if isinstance(exc, Web3RPCError):
        response = getattr(exc, "rpc_response", None) or {}
        error = response.get("error") if isinstance(response, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else str(exc)
        code = error.get("code") if isinstance(error, dict) else None
        if _LIMIT_PATTERNS.search(message) or _LIMIT_PATTERNS.search(str(exc)):
            return "limit"
        if code in _LIMIT_CODES:
            return "limit"
        return "fatal"
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return "limit" if status in _TRANSIENT_HTTP else "fatal"
    if isinstance(exc, (requests.Timeout, TimeoutError)):
        return "limit"
    if isinstance(exc, (requests.ConnectionError, ConnectionError, OSError)):
        return "transient"
    if _LIMIT_PATTERNS.search(str(exc)):
        return "limit"
    return "fatal"


def rpc_call(w3: Web3, method: str, fn: Callable[[], Any], *, attempts: int = 4, backoff: float = 0.25) -> Any:
    """Run ``fn`` (one RPC request), retrying transient faults a bounded number of times."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # classified below; anything fatal is re-raised as is
            kind = classify_rpc_error(exc)
            if kind == "fatal" and not isinstance(exc, (requests.ConnectionError, ConnectionError)):
                raise
            if attempt == attempts - 1:
                raise RpcUnavailableError(_endpoint(w3), method, _short(exc)) from None
            time.sleep(backoff * (2**attempt))
    raise AssertionError("unreachable")


def _endpoint(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", w3.provider))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


@dataclass
class FetchStats:
    """How the history was read (logged, not part of the report: it depends on the provider's mood)."""

    calls: int = 0
    limited: int = 0
    transient: int = 0
    logs: int = 0
    smallest_span: int = 0
    largest_span: int = 0


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
    """``eth_getLogs`` over any range, shrinking on provider limits and growing again on success."""

    def __init__(
        self,
        w3: Web3,
        *,
        initial_span: int = 2_000,
        max_span: int = 50_000,
        max_failures: int = 12,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if initial_span < 1 or max_span < initial_span:
            raise ValueError(f"bad span settings: initial {initial_span}, max {max_span}")
        self._w3 = w3
        self._span = initial_span
        self._max_span = max_span
        self._max_failures = max_failures
        self._backoff = backoff
        self._sleep = sleep
        self.stats = FetchStats()

    def get_logs(
        self, addresses: Sequence[str], from_block: int, to_block: int, topics: list[Any] | None = None
    ) -> list[RawLog]:
        """Every log of ``addresses`` (and ``topics``) in ``[from_block, to_block]``, ordered by position."""
        out: list[RawLog] = []
        start = from_block
        failures = 0
        while start <= to_block:
            end = min(to_block, start + self._span - 1)
            params: dict[str, Any] = {"address": list(addresses), "fromBlock": start, "toBlock": end}
            if topics is not None:
                params["topics"] = topics
            self.stats.calls += 1
            try:
                entries = self._w3.eth.get_logs(params)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - classified; fatal errors propagate
                kind = classify_rpc_error(exc)
                if kind == "fatal":
                    raise LogRangeError(start, end, _short(exc)) from None
                failures += 1
                if kind == "limit":
                    self.stats.limited += 1
                else:
                    self.stats.transient += 1
                if failures > self._max_failures:
                    if kind == "transient":
                        raise RpcUnavailableError(_endpoint(self._w3), "eth_getLogs", _short(exc)) from None
                    raise LogRangeError(start, end, _short(exc)) from None
                suggested = _SUGGESTED.search(str(exc))
                if suggested and int(suggested.group(1), 16) == start and int(suggested.group(2), 16) >= start:
                    self._span = max(1, int(suggested.group(2), 16) - start + 1)
                else:
                    self._span = max(1, (end - start + 1) // 2)
                log.info("eth_getLogs %d..%d refused (%s): span now %d", start, end, kind, self._span)
                if kind == "transient":
                    self._sleep(min(2.0, self._backoff * failures))
                continue
            failures = 0
            span_used = end - start + 1
            self.stats.smallest_span = min(self.stats.smallest_span or span_used, span_used)
            self.stats.largest_span = max(self.stats.largest_span, span_used)
            out.extend(_normalise(e) for e in entries)
            start = end + 1
            self._span = min(self._max_span, self._span * 2)
        self.stats.logs += len(out)
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
                log.info("batched eth_getBlockByNumber refused (%s); reading %d headers one by one", _short(exc), len(part))
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
