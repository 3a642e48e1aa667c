"""Talking to the Kuota contracts: connection checks, decoded reverts, nonce-safe transactions."""

from __future__ import annotations

from nodeclient.chain.client import ChainClient, FeeQuote, NonceConsumedError, TxResult, make_web3
from nodeclient.chain.errors import (
    ChainIdMismatchError,
    ChainUnreachableError,
    ContractRevertError,
    DecodedError,
    FeeCapError,
    NotEnoughGasFundsError,
    TxTimeoutError,
    UnknownContractError,
    decode_revert,
)
from nodeclient.chain.journal import TxJournal, TxRecord

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
    "TxTimeoutError",
    "UnknownContractError",
    "decode_revert",
    "make_web3",
]
