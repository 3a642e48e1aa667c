"""Errors of the auditor, one class per way an audit can fail to reach a verdict or reach a bad one.

The exit codes are the CLI's contract with CI jobs (see ``nodeclient.errors``):

- ``AuditInputError`` (4): the inputs are unusable — RPC down, wrong chain, manifest that does not match
  the chain, a block range the auditor refuses (inside the reorg depth), malformed options.
- ``AuditMismatchError`` (6): the replay disagrees with the chain. Raised by the CLI after the report is
  printed, so the evidence is always shown first.
- ``AuditEvidenceError`` (7): receipt bundles are missing or cannot be verified.
"""

from __future__ import annotations

from nodeclient.errors import EXIT_AUDIT_EVIDENCE, EXIT_AUDIT_MISMATCH, EXIT_CHAIN, AuditError

__all__ = [
    "AuditEvidenceError",
    "AuditInputError",
    "AuditMismatchError",
    "ChainMismatchError",
    "LogRangeError",
    "ReorgDuringFetchError",
    "RpcUnavailableError",
    "UnconfirmedRangeError",
]


class AuditInputError(AuditError):
    """The auditor cannot work with what it was given; nothing was judged."""

    exit_code = EXIT_CHAIN


class RpcUnavailableError(AuditInputError):
    """The RPC endpoint does not answer (after bounded retries)."""

    def __init__(self, url: str, method: str, detail: str) -> None:
        self.url = url
        super().__init__(f"the RPC endpoint {url} did not answer {method}: {detail}")


class ChainMismatchError(AuditInputError):
    """The RPC serves another chain than the manifest, or the contracts there are not the manifest's."""


class UnconfirmedRangeError(AuditInputError):
    """The requested range reaches into blocks that may still be reorganised."""

    def __init__(self, to_block: int, latest: int, confirmations: int) -> None:
        self.to_block = to_block
        super().__init__(
            f"--to-block {to_block} is inside the reorg depth: the latest block is {latest} and the "
            f"confirmation depth is {confirmations}, so the last block the audit reports on is "
            f"{latest - confirmations}; pass --allow-unconfirmed to report on it anyway"
        )


class LogRangeError(AuditInputError):
    """``eth_getLogs`` failed even for the smallest range, so the event history is incomplete."""

    def __init__(self, from_block: int, to_block: int, detail: str) -> None:
        super().__init__(
            f"eth_getLogs for blocks {from_block}..{to_block} failed even after shrinking the range: {detail}"
        )


class ReorgDuringFetchError(AuditInputError):
    """A block's hash changed while the auditor was reading it: the chain reorganised under it."""

    def __init__(self, block: int, seen: str, now: str) -> None:
        super().__init__(
            f"block {block} changed hash during the audit ({seen} then {now}): the chain reorganised; "
            "re-run, or audit a range further below the head"
        )


class AuditMismatchError(AuditError):
    """The replay disagrees with the chain; ``count`` findings are in the report."""

    exit_code = EXIT_AUDIT_MISMATCH

    def __init__(self, count: int, first: str) -> None:
        self.count = count
        super().__init__(f"audit found {count} mismatch(es) between the replay and the chain; first: {first}")


class AuditEvidenceError(AuditError):
    """Receipt bundles are missing or unverifiable; ``count`` findings are in the report."""

    exit_code = EXIT_AUDIT_EVIDENCE

    def __init__(self, count: int, first: str) -> None:
        self.count = count
        super().__init__(f"audit found {count} missing or unverifiable bundle record(s); first: {first}")
