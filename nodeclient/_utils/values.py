"""Parsing and formatting of user-given values: token amounts, addresses, integers.

Every parser raises a specific ``BadValueError`` whose message names the option and repeats the
value, so a typo is found from the error line alone.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from nodeclient.errors import KuotaError

__all__ = [
    "UINT256_MAX",
    "ZERO_ADDRESS",
    "BadValueError",
    "format_amount",
    "parse_address",
    "parse_amount",
    "parse_uint",
]

UINT256_MAX = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


class BadValueError(KuotaError):
    """A command-line or file value is malformed or out of range."""

    def __init__(self, what: str, value: object, problem: str) -> None:
        self.what = what
        self.value = value
        super().__init__(f"invalid {what} {value!r}: {problem}")


def parse_amount(what: str, text: str, decimals: int, *, maximum: int = UINT256_MAX, allow_zero: bool = False) -> int:
    """Parse a decimal token amount (``"12.5"``) into base units with ``decimals`` decimals."""
    raw = str(text).strip().replace("_", "")
    if not _DECIMAL.match(raw):
        raise BadValueError(what, text, "expected a non-negative decimal number such as 12 or 12.5")
    try:
        value = Decimal(raw) * (Decimal(10) ** decimals)
    except InvalidOperation:
        raise BadValueError(what, text, "not a number") from None
    if value != value.to_integral_value():
        raise BadValueError(what, text, f"has more than {decimals} decimals")
    units = int(value)
    if units == 0 and not allow_zero:
        raise BadValueError(what, text, "must be greater than zero")
    if units > maximum:
        raise BadValueError(what, text, f"exceeds the maximum of {format_amount(maximum, decimals)}")
    return units


def parse_uint(what: str, value: object, bits: int = 256, *, allow_zero: bool = True) -> int:
    """Parse an unsigned integer that must fit in ``bits`` bits."""
    if isinstance(value, bool):
        raise BadValueError(what, value, "expected an integer")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if not re.fullmatch(r"[0-9]+", text):
            raise BadValueError(what, value, "expected a non-negative integer")
        number = int(text)
    elif isinstance(value, int):
        number = value
    else:
        raise BadValueError(what, value, "expected an integer")
    if number < 0:
        raise BadValueError(what, value, "must not be negative")
    if number >= 2**bits:
        raise BadValueError(what, value, f"does not fit in uint{bits}")
    if number == 0 and not allow_zero:
        raise BadValueError(what, value, "must be greater than zero")
    return number


def parse_address(what: str, value: str, *, allow_zero: bool = False) -> str:
    """Parse an address; mixed case must be a valid EIP-55 checksum (a typo detector), zero refused."""
    text = str(value).strip()
    if not is_hex_address(text):
        raise BadValueError(what, value, "not a 20-byte 0x-prefixed hex address")
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise BadValueError(what, value, f"bad EIP-55 checksum (did you mean {to_checksum_address(text)}? check for a typo)")
    address = to_checksum_address(text)
    if address == ZERO_ADDRESS and not allow_zero:
        raise BadValueError(what, value, "the zero address is not allowed")
    return address


def format_amount(units: int, decimals: int, symbol: str = "") -> str:
    """Base units as a decimal string without trailing zeros (``12.5 USD``)."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    whole, frac = divmod(units, 10**decimals) if decimals else (units, 0)
    text = f"{sign}{whole:,}"
    if frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return f"{text} {symbol}".rstrip()
