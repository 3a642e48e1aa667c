"""Findings: what the audit says about one record, and how findings turn into a verdict.

Three severities, each with its own consequence for the exit code:

- ``mismatch`` — the chain's own records disagree with each other or with the replay (exit 6);
- ``evidence`` — a receipt bundle is missing or does not verify (exit 7);
- ``warning``  — a pattern worth a human look, with the evidence; never changes the exit code.

Every finding names its record (an event at block/log, a bundle file and receipt index, a node and
epoch), so a reader can find it on a block explorer or in the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVIDENCE", "MISMATCH", "SEVERITIES", "WARNING", "Finding", "Findings"]

MISMATCH = "mismatch"
EVIDENCE = "evidence"
WARNING = "warning"
SEVERITIES = (MISMATCH, EVIDENCE, WARNING)


@dataclass(frozen=True)
class Finding:
    """One statement about one record; ``position`` orders findings deterministically."""

    severity: str
    code: str
    record: str
    message: str
    position: tuple[int, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def sort_key(self) -> tuple[Any, ...]:
        """Severity first, then chain position, then code and text: stable across runs."""
        return (SEVERITIES.index(self.severity), self.position, self.code, self.record, self.message)

    def to_json(self) -> dict[str, Any]:
        """JSON form (evidence values must already be JSON-safe)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "record": self.record,
            "message": self.message,
            "evidence": self.evidence,
        }


class Findings:
    """An append-only list of findings with per-severity counts."""

    def __init__(self) -> None:
        self._items: list[Finding] = []

    def add(
        self,
        severity: str,
        code: str,
        record: str,
        message: str,
        *,
        position: tuple[int, ...] = (),
        evidence: dict[str, Any] | None = None,
    ) -> None:
        """Record a finding."""
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        self._items.append(Finding(severity, code, record, message, position, evidence or {}))

    def mismatch(self, code: str, record: str, message: str, **kw: Any) -> None:
        """Record a disagreement between the chain and the replay."""
        self.add(MISMATCH, code, record, message, **kw)

    def evidence(self, code: str, record: str, message: str, **kw: Any) -> None:
        """Record missing or unverifiable bundle evidence."""
        self.add(EVIDENCE, code, record, message, **kw)

    def warning(self, code: str, record: str, message: str, **kw: Any) -> None:
        """Record a pattern worth a human look."""
        self.add(WARNING, code, record, message, **kw)

    def extend(self, other: Findings) -> None:
        """Append every finding of ``other``."""
        self._items.extend(other._items)

    def sorted(self) -> list[Finding]:
        """All findings in report order, exact duplicates removed."""
        return sorted(set(self._items), key=Finding.sort_key)

    def count(self, severity: str) -> int:
        """Number of distinct findings of ``severity``."""
        return sum(1 for f in set(self._items) if f.severity == severity)
