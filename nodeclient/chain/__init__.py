"""Talking to the Kuota contracts: one RPC layer, connection checks, decoded reverts, nonce-safe transactions."""

from __future__ import annotations

from nodeclient.chain.client import ChainClient
from nodeclient.chain.errors import (
    ChainIdMismatchError,
    ChainUnreachableError,
    ContractRevertError,
    DecodedError,
    FeeCapError,
    NonceConsumedError,
    NotEnoughGasFundsError,
    TxTimeoutError,
    UnknownContractError,
    decode_revert,
)
from nodeclient.chain.journal import TxJournal, TxRecord
from nodeclient.chain.results import FeeQuote, TxResult
from nodeclient.chain.rpc import connect, connect_async, connect_profile
from nodeclient.chain.sending import TxSender

__all__ = [
    "ChainClient",
    "ChainIdMismatchError",
    "ChainUnreachableError",
    "ContractRevertError",
    "DecodedError",
    "FeeCapError",
    "FeeQuote",
    "NonceConsumedError",
    "NotEnoughGasFundsError",
    "TxJournal",
    "TxRecord",
    "TxResult",
    "TxSender",
    "TxTimeoutError",
    "UnknownContractError",
    "connect",
    "connect_async",
    "connect_profile",
    "decode_revert",
]
