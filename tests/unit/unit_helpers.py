"""Helpers for the contract unit tests: exact custom-error matching, roles, node-key signatures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from brownie import chain
from brownie.exceptions import decode_typed_error
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from nodeclient.receipts import Receipt

__all__ = [
    "ANVIL_MNEMONIC",
    "ANY_UINT",
    "RECEIPT_TYPES",
    "SECP256K1_N",
    "UNIT",
    "Signed",
    "anvil_key",
    "custom_error",
    "custom_error_pattern",
    "mine_at",
    "node_key_signature",
    "plain",
    "recovered_address",
    "role",
    "set_next_timestamp",
    "unauthorized",
]

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: One MockUSD (6 decimals).
UNIT = 10**6

_SIGNATURE = re.compile(r"^(\w+)\((.*)\)$")


def custom_error(signature: str, *args: Any) -> str:
    """The revert string Brownie reports for custom error ``signature`` raised with ``args``.

    ``custom_error("StakingStakeLocked(address,uint256,uint256)", op, 5, 10)`` encodes the revert data
    (4-byte selector + ABI arguments) and decodes it with Brownie's decoder, exactly as a real revert
    is decoded, so the comparison covers the error's name, argument types and every value.
    """
    match = _SIGNATURE.match(signature)
    if match is None:
        raise ValueError(f"not an error signature: {signature!r}")
    types = [t for t in match.group(2).split(",") if t]
    if len(types) != len(args):
        raise ValueError(f"{signature} takes {len(types)} arguments, got {len(args)}")
    values = [getattr(a, "address", a) for a in args]  # Brownie accounts and contracts → address
    data = keccak(text=signature)[:4] + abi_encode(types, values)
    decoded = decode_typed_error("0x" + data.hex())
    if decoded.startswith("Unknown typed error"):
        raise ValueError(f"{signature} is not in any compiled ABI (typo in the error signature?)")
    return decoded


def role(name: str) -> bytes:
    """``keccak256(name)`` as the contracts define their role constants (DEFAULT_ADMIN_ROLE is zero)."""
    return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


def unauthorized(account: Any, role_name: str) -> str:
    """OpenZeppelin's ``AccessControlUnauthorizedAccount(account, role)``."""
    return custom_error("AccessControlUnauthorizedAccount(address,bytes32)", account, role(role_name))


def node_key_signature(registry: Any, key: Any, node: str, operator: str) -> str:
    """EIP-712 ``NodeKey(node, key, operator)`` signed by ``key`` (eth-account), as 0x-hex."""
    typed = {
        "domain": {
            "name": "Kuota NodeRegistry",
            "version": "1",
            "chainId": chain.id,
            "verifyingContract": registry.address,
        },
        "types": {
            "NodeKey": [
                {"name": "node", "type": "address"},
                {"name": "key", "type": "address"},
                {"name": "operator", "type": "address"},
            ]
        },
        "primaryType": "NodeKey",
        "message": {"node": node, "key": key.address, "operator": operator},
    }
    signed = Account.sign_message(encode_typed_data(full_message=typed), key.key)
    return "0x" + bytes(signed.signature).hex()


RECEIPT_TYPES = {
    "Receipt": [
        {"name": "consumer", "type": "address"},
        {"name": "node", "type": "address"},
        {"name": "sessionId", "type": "bytes32"},
        {"name": "cumulativeBytes", "type": "uint256"},
        {"name": "cumulativeAmount", "type": "uint256"},
        {"name": "latencyMs", "type": "uint32"},
        {"name": "issuedAt", "type": "uint64"},
    ]
}


@dataclass(frozen=True)
class Signed:
    """A signed receipt: ``args`` is the Solidity struct as a tuple (field order of the type),
    ``receipt`` the client's model when the client accepts the values."""

    args: tuple
    signature: str
    receipt: Receipt | None = None


def plain(value: Any) -> Any:
    """Brownie return values and event data as plain Python (tuples of ints/str), for == comparisons."""
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, bytes):
        return bytes(value)
    return str(value) if not isinstance(value, (str,)) else value


def anvil_key(index: int) -> str:
    """Private key (0x-hex) of Anvil's default account ``index``."""
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()


#: Stands for "any unsigned integer" in `custom_error_pattern` (a block timestamp, say).
ANY_UINT = object()


def custom_error_pattern(signature: str, *args: Any) -> str:
    """A regex for `brownie.reverts(revert_pattern=...)`: like `custom_error`, but an argument given as
    `ANY_UINT` matches any integer (for values such as ``block.timestamp`` inside the reverting block)."""
    placeholder = 0
    rendered = custom_error(signature, *[placeholder if a is ANY_UINT else a for a in args])
    name, _, tail = rendered.partition(": ")
    parts = tail.split(", ") if tail else []
    out = [r"\d+" if a is ANY_UINT else re.escape(p) for a, p in zip(args, parts)]
    return re.escape(name) + ": " + ", ".join(out)


def set_next_timestamp(timestamp: int) -> None:
    """Make the next mined block carry exactly ``timestamp`` (Anvil ``evm_setNextBlockTimestamp``)."""
    from brownie import web3

    response = web3.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])
    if "error" in response:
        raise RuntimeError(f"evm_setNextBlockTimestamp({timestamp}) failed: {response['error']}")


def recovered_address(digest: bytes, signature: str) -> str:
    """The address ecrecover yields for a well-formed ``signature`` over ``digest`` (client's recovery)."""
    from nodeclient.receipts.signing import recover_signer

    return recover_signer(digest, signature)


def mine_at(timestamp: int) -> None:
    """Mine one empty block at exactly ``timestamp``."""
    from brownie import chain

    set_next_timestamp(timestamp)
    chain.mine()
