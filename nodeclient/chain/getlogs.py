"""``eth_getLogs`` over any block range, whatever limits the provider enforces.

Providers cap ``eth_getLogs`` differently (1k-10k blocks, 10k results, response bytes, time) and say
so in different words and codes. :class:`AdaptiveLogReader` starts with a moderate span, halves it
(or takes the range the provider suggests) whenever an answer looks like a limit, and doubles it
again after each success, so a capped provider costs a few extra calls rather than a failed read.
Failures are bounded: when even one block cannot be read, :class:`LogQueryError` says which range
and why, and the caller turns it into its own error (the auditor's input error, the client's chain
error) instead of working on a partial history.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from web3.exceptions import Web3RPCError

__all__ = ["AdaptiveLogReader", "FetchStats", "LogQueryError", "Progress", "classify_rpc_error", "short_reason"]

#: ``progress(blocks_done, blocks_total)`` of one read: called once before the first request and after
#: every span that was read, so a display can show block counts however the spans shrink or grow.
Progress = Callable[[int, int], None]

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


def short_reason(exc: BaseException) -> str:
    """First line of an exception's text (what an error message can quote)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


class LogQueryError(Exception):
    """A block range could not be read: ``kind`` is ``transient`` (endpoint down), ``limit`` or ``fatal``."""

    def __init__(self, kind: str, from_block: int, to_block: int, reason: str) -> None:
        self.kind = kind
        self.from_block = from_block
        self.to_block = to_block
        self.reason = reason
        super().__init__(f"eth_getLogs {from_block}..{to_block} ({kind}): {reason}")


@dataclass
class FetchStats:
    """How the history was read (logged, not reported: it depends on the provider's mood)."""

    calls: int = 0
    limited: int = 0
    transient: int = 0
    logs: int = 0
    smallest_span: int = 0
    largest_span: int = 0


class AdaptiveLogReader:
    """Reads ``[from_block, to_block]`` in spans that shrink on provider limits and grow on success."""

    def __init__(
        self,
        *,
        initial_span: int = 2_000,
        max_span: int = 50_000,
        max_failures: int = 12,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        if initial_span < 1 or max_span < initial_span:
            raise ValueError(f"bad span settings: initial {initial_span}, max {max_span}")
        self._span = initial_span
        self._max_span = max_span
        self._max_failures = max_failures
        self._backoff = backoff
        self._sleep = sleep
        self._progress = progress
        self.stats = FetchStats()

    def read(self, fetch: Callable[[int, int], list[Any]], from_block: int, to_block: int) -> list[Any]:
        """Every entry ``fetch(start, end)`` returns over the range, in range order.

        Raises:
            LogQueryError: a fatal answer, or more than ``max_failures`` limits / faults in a row.
        """
        out: list[Any] = []
        start = from_block
        failures = 0
        total = max(0, to_block - from_block + 1)
        if self._progress is not None:
            self._progress(0, total)
        while start <= to_block:
            end = min(to_block, start + self._span - 1)
            self.stats.calls += 1
            try:
                entries = fetch(start, end)
            except Exception as exc:  # noqa: BLE001 - classified; fatal errors become LogQueryError
                failures += 1
                self._refused(exc, start, end, failures)
                continue
            failures = 0
            span_used = end - start + 1
            self.stats.smallest_span = min(self.stats.smallest_span or span_used, span_used)
            self.stats.largest_span = max(self.stats.largest_span, span_used)
            out.extend(entries)
            start = end + 1
            self._span = min(self._max_span, self._span * 2)
            if self._progress is not None:
                self._progress(start - from_block, total)
        self.stats.logs += len(out)
        return out

    def _refused(self, exc: Exception, start: int, end: int, failures: int) -> None:
        """Shrink the span after a refusal (or raise when it is fatal or the failures run out)."""
        kind = classify_rpc_error(exc)
        if kind == "fatal":
            raise LogQueryError(kind, start, end, short_reason(exc)) from None
        if kind == "limit":
            self.stats.limited += 1
        else:
            self.stats.transient += 1
        if failures > self._max_failures:
            raise LogQueryError(kind, start, end, short_reason(exc)) from None
        suggested = _SUGGESTED.search(str(exc))
        if suggested and int(suggested.group(1), 16) == start and int(suggested.group(2), 16) >= start:
            self._span = max(1, int(suggested.group(2), 16) - start + 1)
        else:
            self._span = max(1, (end - start + 1) // 2)
        log.info("eth_getLogs %d..%d refused (%s): span now %d", start, end, kind, self._span)
        if kind == "transient":
            self._sleep(min(2.0, self._backoff * failures))
