"""HTTP ``Range`` requests on immutable files, deliberately narrow: one range, bounded length.

A bundle is fetched whole by auditors; ranges exist to resume a large download. Multi-range
requests (multipart responses) and ranges longer than the limit are refused, so one request cannot
make the node read or send more than ``max_length`` bytes of a bundle at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ByteRange", "RangeError", "RangeNotSatisfiableError", "parse_range"]

_SPEC = re.compile(r"^(\d*)-(\d*)$")


class RangeError(ValueError):
    """The Range header is malformed (answered 400)."""


class RangeNotSatisfiableError(ValueError):
    """The range is well formed but refused or outside the file (answered 416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` .. ``end`` inclusive of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header value of a 206 answer."""
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str, size: int, max_length: int) -> ByteRange:
    """The single range ``header`` asks of a ``size``-byte file.

    Raises:
        RangeError: not ``bytes=<first>-<last>``, ``bytes=<first>-`` or ``bytes=-<suffix>``.
        RangeNotSatisfiableError: several ranges, a range past the end, or longer than ``max_length``.
    """
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeError(f"Range {header!r} is not a bytes range")
    parts = [p.strip() for p in specs.split(",")]
    if len(parts) != 1:
        raise RangeNotSatisfiableError(f"Range {header!r} asks for {len(parts)} ranges; one range per request")
    match = _SPEC.match(parts[0])
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeError(f"Range {header!r} is malformed")
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError(f"Range {header!r} selects no bytes of a {size}-byte file")
        start, end = max(0, size - suffix), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last != "" else size - 1
        if last != "" and int(last) < start:
            raise RangeError(f"Range {header!r} ends before it starts")
        if start >= size:
            raise RangeNotSatisfiableError(f"Range {header!r} starts past the end of a {size}-byte file")
    selected = ByteRange(start, end, size)
    if selected.length > max_length:
        raise RangeNotSatisfiableError(
            f"Range {header!r} asks for {selected.length} bytes; at most {max_length} per request"
        )
    return selected
