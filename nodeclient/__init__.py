"""Kuota's client SDK: keys, chain access, receipts, settlement, rewards, earnings and the relay for
node operators, consumers and auditors. The ``kuota`` command line is a thin layer over it: every
command is a call to the names below.

Entry points, by task:

- Settings and accounts: :func:`load_settings` (file, ``KUOTA_*`` env, overrides) gives
  :class:`Settings`, whose ``profile()`` is the :class:`NetworkProfile` to connect to;
  :class:`KeyManager` creates, imports and unlocks keystores (passwords as :class:`Secret`).
- Chain: ``ChainClient.connect(profile, data_dir)`` verifies chain id and deployment;
  :class:`Transactions` is the spending flow on it (estimate, confirm, send, wait; exact approvals;
  balance checks), with :class:`TokenAmount`, :class:`SpendPlan` and :class:`WatchOnly`.
- Receipts: :class:`Receipt`, :class:`SignedReceipt`, :func:`sign_receipt`, :func:`load_receipts`;
  the durable store from :func:`open_store`.
- Settlement: :func:`reconcile`, :func:`plan_settlement`, :func:`execute_plan` (or
  :func:`settle_node` for all three); :func:`deployment_domain` is the EIP-712 domain to sign for.
  ``module="lanes"`` (``open_store``, ``deployment_domain``) settles through LaneSettlement.
- Lanes: :func:`lanes_of` / :func:`lane_of` read a consumer's lanes, :func:`plan_allocation` applies
  an allocation policy and :func:`allocate_call` builds the transaction (``kuota escrow allocate``).
- Rewards and earnings: :func:`rewards_summary`, :func:`plan_claim`, :func:`claim`,
  :func:`finalize_backlog`; :func:`node_earnings`.
- Relay: :func:`run_node` is the node daemon (``kuota node serve``); :func:`open_session` the
  paying consumer's side (``kuota consume``).
- Audit: :func:`run_audit` with :class:`AuditOptions` replays every payout from chain events.
- Errors: everything raised on purpose is a :class:`KuotaError` with a full sentence and an exit code.

Importing the package imports nothing heavy: each name is loaded on first use (web3 takes a second
to import on small devices, and ``kuota --help`` never needs it).
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodeclient.audit import AuditOptions, run_audit
    from nodeclient.chain import ChainClient
    from nodeclient.config import NetworkProfile, Settings, load_settings
    from nodeclient.earnings import node_earnings
    from nodeclient.errors import KuotaError
    from nodeclient.keys import KeyManager, Secret
    from nodeclient.lanes import allocate_call, lane_of, lanes_of, plan_allocation
    from nodeclient.receipts import Receipt, SignedReceipt, load_receipts, sign_receipt
    from nodeclient.relay import open_session
    from nodeclient.relay.daemon import run_node
    from nodeclient.rewards import claim, finalize_backlog, plan_claim, rewards_summary
    from nodeclient.settlement import (
        deployment_domain,
        execute_plan,
        open_store,
        plan_settlement,
        reconcile,
        settle_node,
    )
    from nodeclient.transactions import SpendPlan, TokenAmount, Transactions, WatchOnly

__all__ = [
    "AuditOptions",
    "ChainClient",
    "KeyManager",
    "KuotaError",
    "NetworkProfile",
    "Receipt",
    "Secret",
    "Settings",
    "SignedReceipt",
    "SpendPlan",
    "TokenAmount",
    "Transactions",
    "WatchOnly",
    "__version__",
    "allocate_call",
    "claim",
    "deployment_domain",
    "execute_plan",
    "finalize_backlog",
    "lane_of",
    "lanes_of",
    "load_receipts",
    "load_settings",
    "node_earnings",
    "open_session",
    "open_store",
    "plan_allocation",
    "plan_claim",
    "plan_settlement",
    "reconcile",
    "rewards_summary",
    "run_audit",
    "run_node",
    "settle_node",
    "sign_receipt",
]

_HOMES: dict[str, tuple[str, ...]] = {
    "nodeclient.audit": ("AuditOptions", "run_audit"),
    "nodeclient.chain": ("ChainClient",),
    "nodeclient.config": ("NetworkProfile", "Settings", "load_settings"),
    "nodeclient.earnings": ("node_earnings",),
    "nodeclient.errors": ("KuotaError",),
    "nodeclient.keys": ("KeyManager", "Secret"),
    "nodeclient.lanes": ("allocate_call", "lane_of", "lanes_of", "plan_allocation"),
    "nodeclient.receipts": ("Receipt", "SignedReceipt", "load_receipts", "sign_receipt"),
    "nodeclient.relay": ("open_session",),
    "nodeclient.relay.daemon": ("run_node",),
    "nodeclient.rewards": ("claim", "finalize_backlog", "plan_claim", "rewards_summary"),
    "nodeclient.settlement": (
        "deployment_domain", "execute_plan", "open_store", "plan_settlement", "reconcile", "settle_node",
    ),
    "nodeclient.transactions": ("SpendPlan", "TokenAmount", "Transactions", "WatchOnly"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

try:
    __version__ = metadata.version("kuota-nodeclient")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'nodeclient' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
