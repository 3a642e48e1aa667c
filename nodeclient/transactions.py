"""The spending flow every state-changing action shares: estimate, confirm, send, wait.

:class:`Transactions` binds one :class:`~nodeclient.chain.ChainClient` to a confirmation policy.
``send`` estimates the call (a revert surfaces here, before anything is signed), hands the
:class:`SpendPlan` to ``confirm`` (which may show it, ask, or raise to stop; ``None`` sends at once)
and then signs, sends and waits for confirmation through the client's nonce journal. The ``kuota``
command line passes a ``confirm`` that prints the plan, stops a ``--dry-run`` and prompts unless
``--yes``; a program using the SDK passes its own policy, or none.

``ensure_allowance`` approves exactly what the next call takes, never an unlimited amount, and
``require_balance`` refuses before any transaction when the wallet cannot cover what it is about
to move, so a two-step action never stops halfway for a reason that was known up front.

Example::

    flow = Transactions(client)
    amount = flow.token_amount("KuotaToken", "1000")
    stake = client.contract("Staking").functions.stake(amount.value)
    flow.send_with_allowance(signer, "KuotaToken", "Staking", amount, "stake", stake, f"stake {amount}", kind="stake")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from nodeclient._utils.values import format_amount, parse_amount
from nodeclient.errors import InsufficientFundsError, RefusedError

__all__ = [
    "Confirm",
    "Progress",
    "SpendPlan",
    "TokenAmount",
    "Transactions",
    "WatchOnly",
]

Progress = Callable[[str], None]
"""Receives one-line progress messages while a transaction is sent and confirmed."""

Confirm = Callable[["SpendPlan"], None]
"""Sees a transaction before it is signed; raises (e.g. :class:`~nodeclient.errors.RefusedError`) to stop it."""


@dataclass(frozen=True)
class TokenAmount:
    """An amount of a token in base units, with what it takes to print it."""

    value: int
    decimals: int
    symbol: str

    def __str__(self) -> str:
        return format_amount(self.value, self.decimals, self.symbol)


@dataclass(frozen=True)
class SpendPlan:
    """One transaction about to be sent: what it does, from whom, where, and what it may cost."""

    action: str
    sender: str
    network: str
    chain_id: int
    quote: Any

    def to_json(self) -> dict[str, Any]:
        """Stable machine form (the ``--dry-run`` / ``--json`` plan)."""
        return {
            "action": self.action,
            "from": self.sender,
            "network": self.network,
            "chainId": self.chain_id,
            "fee": self.quote.to_json(),
        }


class WatchOnly:
    """An account known by address only: it can be estimated from (a dry run), never sign."""

    def __init__(self, address: str, alias: str | None = None) -> None:
        self.address = address
        self.alias = alias

    def __repr__(self) -> str:
        return f"WatchOnly(alias={self.alias!r}, address={self.address})"

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RefusedError(f"dry run: account {self.address} is not unlocked and signs nothing")

    sign_transaction = sign_typed_data = private_key_bytes = _refuse


@contextmanager
def _silent(message: str) -> Iterator[Progress]:
    yield lambda text: None


class Transactions:
    """Estimate, confirm, send and wait for transactions of one chain client.

    ``confirm`` sees every transaction before it is signed (``None``: send without asking).
    ``sending(message)`` is entered around each send and yields the progress callback (the CLI's
    spinner); ``note`` receives the one line announcing an approval that precedes the real call.
    """

    def __init__(
        self,
        client: Any,
        *,
        confirm: Confirm | None = None,
        sending: Callable[[str], AbstractContextManager[Progress]] | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self._confirm = confirm
        self._sending = sending or _silent
        self._note = note or (lambda text: None)

    def plan(self, sender: str, fn_call: Any, description: str, value: int = 0) -> SpendPlan:
        """Estimate ``fn_call`` from ``sender`` (a revert raises its decoded error here)."""
        quote = self.client.estimate(sender, fn_call, description, value)
        return SpendPlan(description, sender, self.client.profile.name, self.client.chain_id, quote)

    def send(self, signer: Any, fn_call: Any, description: str, **kwargs: Any) -> Any:
        """Estimate, confirm, send and wait for one transaction; returns the client's ``TxResult``.

        ``kwargs`` go to ``ChainClient.transact`` (``kind``, ``node``, ``value``, ``gas_headroom``…).
        """
        plan = self.plan(signer.address, fn_call, description, kwargs.get("value", 0))
        if self._confirm is not None:
            self._confirm(plan)
        with self._sending(f"{description}: sending") as update:
            return self.client.transact(signer, fn_call, description, progress=update, **kwargs)

    def token_amount(self, token: str, text: str, *, base_units: bool = False) -> TokenAmount:
        """Parse ``text`` as an amount of ``token`` (decimal tokens, or base units when ``base_units``)."""
        from nodeclient.chain import ops

        info = ops.token_info(self.client, token, self.client.deployment.address(token))
        value = parse_amount("amount", text, 0 if base_units else info.decimals)
        return TokenAmount(value, info.decimals, info.symbol)

    def require_balance(self, holder: str, token: str, amount: TokenAmount, purpose: str) -> None:
        """Refuse before any transaction when ``holder`` has less ``token`` than ``amount``."""
        from nodeclient.chain import ops

        held = ops.token_info(self.client, token, holder).balance
        if held < amount.value:
            raise InsufficientFundsError(
                f"account {holder} holds {format_amount(held, amount.decimals, amount.symbol)}, "
                f"less than the {amount} to {purpose}"
            )

    def ensure_allowance(self, signer: Any, token: str, spender: str, amount: int) -> Any:
        """Approve exactly ``amount`` of ``token`` to contract ``spender`` if the allowance is short.

        Exact approvals, not unlimited ones: a compromised or buggy spender can take no more than
        what the caller is about to use. Returns the approval's ``TxResult``, or ``None`` if none
        was needed.
        """
        from nodeclient.chain.ops import allowance

        if allowance(self.client, token, signer.address, spender) >= amount:
            return None
        call = self.client.contract(token).functions.approve(self.client.deployment.address(spender), amount)
        self._note(f"step 1 of 2: allow {spender} to take {amount} base units of {token} (a second transaction follows)")
        return self.send(signer, call, f"approve {spender} for {amount} {token} units", kind="approve")

    def send_with_allowance(
        self, signer: Any, token: str, spender: str, amount: TokenAmount, purpose: str, fn_call: Any, description: str,
        **kwargs: Any,
    ) -> Any:
        """Send ``fn_call``, which makes contract ``spender`` pull ``amount`` of ``token`` from ``signer``.

        The balance is checked first and an exact approval sent if needed, so the call never fails
        for a reason known before the first transaction.
        """
        self.require_balance(signer.address, token, amount, purpose)
        self.ensure_allowance(signer, token, spender, amount.value)
        return self.send(signer, fn_call, description, **kwargs)
