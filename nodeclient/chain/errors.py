"""Chain errors, and decoding of revert data into the contracts' custom errors.

A revert reaches the client as bytes: a 4-byte selector and ABI-encoded arguments. Operators should
read ``SettlementStaleReceipt(consumer=0x…, node=0x…, cumulativeAmount=5, settledAmount=7)``, not
``0x5b1c…``, so every custom error of every shipped ABI is indexed by selector, together with
Solidity's built-in ``Error(string)`` and ``Panic(uint256)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from nodeclient.abi import CONTRACT_NAMES, load_abi
from nodeclient.errors import ChainError, ConfigError, InsufficientFundsError, TransactionError

__all__ = [
    "FUNDS_ERRORS",
    "ChainIdMismatchError",
    "ChainUnreachableError",
    "ContractInsufficientFundsError",
    "ContractRevertError",
    "DecodedError",
    "FeeCapError",
    "NonceConsumedError",
    "NotEnoughGasFundsError",
    "TxTimeoutError",
    "UnknownContractError",
    "decode_revert",
    "revert_data_of",
    "revert_error",
]

#: Custom errors that mean "a balance, allowance, stake or escrow is too low": exit code 5, not 4.
FUNDS_ERRORS = frozenset(
    {
        "ERC20InsufficientBalance",
        "ERC20InsufficientAllowance",
        "StakingInsufficientStake",
        "StakingStakeLocked",
        "RegistryInsufficientStake",
        "EscrowInsufficientAvailable",
    }
)

_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an invalid internal function",
}


@dataclass(frozen=True)
class DecodedError:
    """A decoded revert: the error's name and its named arguments, in declaration order."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        inner = ", ".join(f"{key}={_fmt(value)}" for key, value in self.args.items())
        return f"{self.name}({inner})"

    def to_json(self) -> dict[str, Any]:
        """Stable machine form (integers as decimal strings would lose nothing, but JSON ints are exact)."""
        return {"name": self.name, "args": {k: _jsonable(v) for k, v in self.args.items()}}


class ChainUnreachableError(ChainError):
    """The RPC endpoint does not answer."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"the RPC endpoint {url} is unreachable ({reason}); is the chain running?")


class ChainIdMismatchError(ChainError):
    """The RPC serves another chain than the profile says."""

    def __init__(self, url: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"the RPC endpoint {url} serves chain id {actual}, but the network profile expects chain id {expected}; "
            "refusing to continue"
        )


class UnknownContractError(ChainError):
    """A manifest address holds no code, or code that is not the named contract."""

    def __init__(self, name: str, address: str, problem: str) -> None:
        super().__init__(f"{name} at {address} {problem}; the deployment manifest does not match this chain")


class ContractRevertError(TransactionError):
    """A call or transaction reverted; ``error`` is the decoded custom error if the ABI knows it."""

    def __init__(self, description: str, error: DecodedError | None, raw: str | None, tx_hash: str | None = None) -> None:
        self.description = description
        self.error = error
        self.raw = raw
        self.tx_hash = tx_hash
        reason = str(error) if error is not None else f"undecoded revert data {raw or '(none)'}"
        where = f" in transaction {tx_hash}" if tx_hash else ""
        super().__init__(f"{description} reverted{where}: {reason}")


class ContractInsufficientFundsError(ContractRevertError, InsufficientFundsError):
    """A revert whose custom error says a balance, allowance, stake or escrow is too low."""

    exit_code = InsufficientFundsError.exit_code


def revert_error(
    description: str, data: str | None, tx_hash: str | None = None
) -> ContractRevertError:
    """The error to raise for revert ``data``: decoded, and classed as a funds problem where it is one."""
    decoded = decode_revert(data)
    cls = ContractInsufficientFundsError if decoded is not None and decoded.name in FUNDS_ERRORS else ContractRevertError
    return cls(description, decoded, data, tx_hash)


class TxTimeoutError(TransactionError):
    """A transaction was not mined within the timeout (it stays in the journal and is resumed next run)."""

    def __init__(self, description: str, tx_hash: str, nonce: int, timeout: float) -> None:
        self.tx_hash = tx_hash
        super().__init__(
            f"{description}: transaction {tx_hash} (nonce {nonce}) not mined after {timeout:.0f} s; "
            "it is journaled and will be resumed (same nonce) by the next command"
        )


class NonceConsumedError(TransactionError):
    """The nonce of a journaled transaction was used by a transaction this client did not journal."""

    def __init__(self, sender: str, nonce: int, description: str) -> None:
        super().__init__(
            f"{description}: nonce {nonce} of {sender} was used by another transaction (not sent by this client); "
            "the journaled transaction was dropped and had no effect"
        )


class FeeCapError(TransactionError):
    """The configured fee cap is below what the chain currently requires."""

    def __init__(self, cap_wei: int, needed_wei: int) -> None:
        super().__init__(
            f"maxFeePerGas cap {cap_wei} wei is below the current base fee requirement {needed_wei} wei; "
            "raise max_fee_gwei or wait for lower fees"
        )


class NotEnoughGasFundsError(InsufficientFundsError):
    """The sender cannot pay for gas (plus value)."""

    def __init__(self, address: str, balance: int, needed: int) -> None:
        self.address = address
        self.balance = balance
        self.needed = needed
        super().__init__(
            f"account {address} holds {balance} wei but this transaction may cost up to {needed} wei (gas × maxFee + value)"
        )


def _fmt(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _canonical_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item.get("components", []))
        return f"({inner}){kind[len('tuple'):]}"
    return kind


@cache
def _error_table() -> dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    table: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ("string",), ("reason",)),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ("uint256",), ("code",)),
    }
    for contract in CONTRACT_NAMES:
        try:
            abi = load_abi(contract)
        except ConfigError:
            continue  # an ABI not shipped yet cannot decode; the raw data is still reported
        for item in abi:
            if item.get("type") != "error":
                continue
            types = tuple(_canonical_type(i) for i in item.get("inputs", []))
            names = tuple(i.get("name") or f"arg{n}" for n, i in enumerate(item.get("inputs", [])))
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table.setdefault(selector, (item["name"], types, names))
    return table


def decode_revert(data: bytes | str | None) -> DecodedError | None:
    """Decode revert ``data`` (bytes or 0x-hex) with every shipped ABI; ``None`` if unknown or empty."""
    if data is None:
        return None
    if isinstance(data, str):
        text = data.removeprefix("0x")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            return None
    if len(data) < 4:
        return None
    entry = _error_table().get(data[:4])
    if entry is None:
        return None
    name, types, names = entry
    try:
        values = abi_decode(list(types), data[4:])
    except Exception:  # noqa: BLE001 - malformed data: report it raw rather than guess
        return None
    args: dict[str, Any] = {}
    for key, kind, value in zip(names, types, values):
        args[key] = to_checksum_address(value) if kind == "address" else value
    if name == "Panic":
        code = args["code"]
        args = {"code": code, "reason": _PANIC_REASONS.get(code, "unknown panic")}
    return DecodedError(name, args)


def revert_data_of(exc: BaseException) -> str | None:
    """Extract revert data (0x-hex) from a web3 exception, whatever shape the node answered with."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, bytes):
        return "0x" + data.hex()
    # Web3RPCError: the JSON-RPC error object is in rpc_response["error"]["data"]
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict):
        error = response.get("error")
        if isinstance(error, dict):
            inner = error.get("data")
            if isinstance(inner, dict):
                inner = inner.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return inner
    return None
