"""Kuota's exception hierarchy.

One root (`KuotaError`), one base per area, and specific classes that build a full sentence naming
the offending value. The CLI turns any `KuotaError` into a single line on stderr and the class's
`exit_code`; anything else is a bug and keeps its traceback.

Exit codes are part of the CLI's contract (scripts branch on them):

====  ===================================================================
 0    success
 1    unexpected internal error (a bug)
 2    bad input: flags, files, values (click's usage errors use 2 as well)
 3    not found: account, keystore, node, receipt, deployment
 4    chain error: RPC unreachable, wrong chain, revert, transaction failed
 5    insufficient funds: balance, escrow, stake or allowance too low
 6    audit mismatch (``kuota audit``): the replay disagrees with the chain
 7    audit evidence missing or unverifiable (bundles)
 8    refused: the user declined a confirmation, or a safety check refused
====  ===================================================================
"""

from __future__ import annotations

__all__ = [
    "EXIT_AUDIT_EVIDENCE",
    "EXIT_AUDIT_MISMATCH",
    "EXIT_BAD_INPUT",
    "EXIT_CHAIN",
    "EXIT_FUNDS",
    "EXIT_NOT_FOUND",
    "EXIT_REFUSED",
    "AuditError",
    "ChainError",
    "ConfigError",
    "InsufficientFundsError",
    "KeystoreError",
    "KuotaError",
    "NotFoundError",
    "ReceiptError",
    "RefusedError",
    "RelayError",
    "StoreError",
    "TransactionError",
]

EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_CHAIN = 4
EXIT_FUNDS = 5
EXIT_AUDIT_MISMATCH = 6
EXIT_AUDIT_EVIDENCE = 7
EXIT_REFUSED = 8


class KuotaError(Exception):
    """Root of every error Kuota raises on purpose. The message is one complete sentence."""

    exit_code: int = EXIT_BAD_INPUT


class ConfigError(KuotaError):
    """Configuration, network profile or deployment manifest is missing, malformed or inconsistent."""


class KeystoreError(KuotaError):
    """Keystore file or password problem. Messages never contain key material or passwords."""


class ReceiptError(KuotaError):
    """A receipt or receipt bundle is malformed, badly signed or inconsistent with its channel."""


class StoreError(KuotaError):
    """The local receipt store cannot be opened, is corrupt, or refused a write."""

    exit_code = EXIT_BAD_INPUT


class NotFoundError(KuotaError):
    """A named thing (account, node, receipt, deployment) does not exist."""

    exit_code = EXIT_NOT_FOUND


class ChainError(KuotaError):
    """The RPC endpoint is unreachable, on the wrong chain, or answered with an error."""

    exit_code = EXIT_CHAIN


class TransactionError(ChainError):
    """A transaction reverted, was dropped, or could not be sent. Reverts carry the decoded custom error."""


class InsufficientFundsError(KuotaError):
    """A balance, allowance, stake or escrow is too low for what was asked."""

    exit_code = EXIT_FUNDS


class RelayError(KuotaError):
    """The metered relay refused or lost a session (handshake, credit, framing)."""


class AuditError(KuotaError):
    """The auditor's inputs are unusable (RPC down, wrong chain, manifest mismatch)."""

    exit_code = EXIT_CHAIN


class RefusedError(KuotaError):
    """The user declined a confirmation, or a safety check refused to proceed."""

    exit_code = EXIT_REFUSED
