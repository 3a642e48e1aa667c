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
    "FeeQuote",
    "TxResult",
    "TxJournal",
    "TxRecord",
    "DecodedError",
    "decode_revert",
    "make_web3",
    "ChainIdMismatchError",
    "ChainUnreachableError",
    "ContractRevertError",
    "FeeCapError",
    "NonceConsumedError",
    "NotEnoughGasFundsError",
    "TxTimeoutError",
    "UnknownContractError",
]
