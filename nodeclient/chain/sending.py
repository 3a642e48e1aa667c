"""Sending transactions safely: journal before broadcast, one nonce per intent, exactly-once resumes.

``TxSender.transact`` is the only way the client spends gas. For one account, under a cross-process
lock, it:

1. finishes whatever the journal says is still in flight from an earlier run (re-broadcasts the
   signed bytes, bumps fees at the same nonce, waits) — so a crash never leads to a second
   transaction doing the same thing under a new nonce. A leftover that turns out mined and does
   exactly what is asked now (same target, calldata and value) *is* the answer: the earlier command
   stopped before it could learn its fate (an RPC fault, a crash), so the rerun reports it instead
   of doing it twice;
2. estimates gas (a revert is decoded into the contract's custom error before anything is signed),
   prices it with EIP-1559 fees, and checks the balance covers ``gas × maxFee + value``;
3. signs, calls ``on_signed`` (the settlement records its batch's tx hash there), journals the signed
   transaction durably, and only then broadcasts;
4. waits for the receipt; a transaction unmined after ``stuck_after`` seconds is replaced at the
   same nonce with fees raised by ``fee_bump_percent`` (≥ 10 %, what nodes require to replace);
5. waits for the profile's confirmation depth, re-reads the receipt (a reorg may have removed it),
   and decodes a revert of a mined transaction by replaying it.

A transport fault anywhere after step 3 leaves the journal row, so the next command resumes it
(step 1); the node's "already known" / "nonce too low" answer to a resent raw transaction means
"ours is already out there", and the receipt lookup decides whether it was ours that used the nonce.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception, Web3RPCError

from nodeclient.chain.errors import (
    ChainUnreachableError,
    ContractRevertError,
    NonceConsumedError,
    NotEnoughGasFundsError,
    TxTimeoutError,
    revert_data_of,
    revert_error,
)
from nodeclient.chain.journal import TxJournal, TxRecord, account_lock
from nodeclient.chain.results import FeeQuote, TxResult
from nodeclient.chain.rpc import TRANSIENT_ERRORS, rpc_message
from nodeclient.config import NetworkProfile
from nodeclient.errors import TransactionError

__all__ = ["ChainReads", "TxSender"]

log = logging.getLogger(__name__)

# What a node answers to raw bytes it already has (pending) or whose nonce is already used (mined).
_ALREADY_KNOWN = ("already known", "known transaction", "already imported")
_NONCE_USED = ("nonce too low", "nonce has already been used")
_CONFIRMED_KEPT = 8


class ChainReads(Protocol):
    """What sending needs of the connection it sends over (:class:`~nodeclient.chain.client.ChainClient`).

    Named here rather than imported so that the client, which owns a sender, and the sender do
    not import each other.
    """

    w3: Web3
    profile: NetworkProfile
    chain_id: int
    data_dir: Path
    poll_interval: float

    def guarded(self, fn: Callable[[], Any], description: str = ...) -> Any: ...
    def block_number(self) -> int: ...
    def balance(self, address: str) -> int: ...
    def fee_caps(self) -> tuple[int, int, int]: ...
    def fee_cap(self) -> int | None: ...
    def estimate(
        self, sender: str, fn_call: Any, description: str, value: int = ..., *, gas_headroom: int = ...
    ) -> FeeQuote: ...


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


class TxSender:
    """The sending half of a :class:`~nodeclient.chain.client.ChainClient` (see module docstring)."""

    def __init__(self, client: ChainReads) -> None:
        self._client = client
        self._journal: TxJournal | None = None
        # Leftovers of earlier runs that this process drove to "mined": (record, result), each
        # answering at most one later identical request.
        self._recovered: list[tuple[TxRecord, TxResult]] = []
        #: (description, result) of the latest transactions this process saw confirmed and successful
        #: (bounded: the relay runs for months).
        self.confirmed: deque[tuple[str, TxResult]] = deque(maxlen=_CONFIRMED_KEPT)

    @property
    def w3(self) -> Web3:
        return self._client.w3

    @property
    def profile(self) -> NetworkProfile:
        return self._client.profile

    @property
    def chain_id(self) -> int:
        return self._client.chain_id

    @property
    def data_dir(self) -> Path:
        return self._client.data_dir

    @property
    def poll_interval(self) -> float:
        return self._client.poll_interval

    @property
    def journal(self) -> TxJournal:
        """The transaction journal of this data dir (opened on first use)."""
        if self._journal is None:
            self._journal = TxJournal(self.data_dir / "txjournal.sqlite")
        return self._journal

    def transact(
        self,
        signer: Any,
        fn_call: Any,
        description: str,
        *,
        kind: str = "tx",
        node: str | None = None,
        value: int = 0,
        gas_headroom: int = 0,
        on_signed: Callable[[str, int], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> TxResult:
        """Send ``fn_call`` from ``signer`` and wait until it is confirmed (see module docstring).

        Raises:
            ContractRevertError: the call reverts (at estimation, or once mined).
            NotEnoughGasFundsError: the balance cannot cover gas × maxFee + value.
            TxTimeoutError: not mined within the profile's ``tx_timeout`` (journaled; resumed next time).
            ChainUnreachableError: the RPC went away (the journal keeps the signed tx).
        """
        sender = signer.address
        # No RPC here: every field is given, so web3 only encodes the call (target and calldata).
        unsigned = fn_call.build_transaction(
            {"from": sender, "chainId": self.chain_id, "nonce": 0, "gas": 1, "maxFeePerGas": 1,
             "maxPriorityFeePerGas": 1, "value": value}
        )
        to, data = to_checksum_address(unsigned["to"]), _hex(unsigned["data"])
        with account_lock(self.data_dir, self.chain_id, sender, on_wait=progress):
            self.finish_pending(signer, progress=progress)
            done = self._take_recovered(sender, to, data, value)
            if done is not None:
                log.info("%s: already done by %s, left in flight by an earlier run; not sent again", description, done.tx_hash)
                return done
            quote = self._client.estimate(sender, fn_call, description, value, gas_headroom=gas_headroom)
            balance = self._client.balance(sender)
            if balance < quote.max_cost:
                raise NotEnoughGasFundsError(sender, balance, quote.max_cost)
            nonce = self._next_nonce(sender)
            record = self._sign_and_journal(
                signer,
                to=to,
                data=data,
                value=value,
                nonce=nonce,
                gas=quote.gas_limit,
                max_fee=quote.max_fee,
                priority_fee=quote.priority_fee,
                kind=kind,
                description=description,
                node=node,
                on_signed=on_signed,
            )
            log.info("%s: signed %s (nonce %d, gas %d)", description, record.tx_hash, nonce, quote.gas_limit)
            return self._await_group(signer, sender, nonce, description, on_signed=on_signed, progress=progress)

    def _take_recovered(self, sender: str, to: str, data: str, value: int) -> TxResult | None:
        """The recovered leftover that did exactly this (same sender, target, calldata, value), used up once."""
        for i, (record, result) in enumerate(self._recovered):
            if (
                record.sender == sender
                and to_checksum_address(record.to_address) == to
                and record.data.lower() == data.lower()
                and int(record.value) == value
            ):
                del self._recovered[i]
                return result
        return None

    def finish_pending(self, signer: Any, *, progress: Callable[[str], None] | None = None) -> list[TxResult]:
        """Drive every journaled in-flight transaction of ``signer`` to a final state, lowest nonce first."""
        results: list[TxResult] = []
        for nonce in self.journal.pending_nonces(self.chain_id, signer.address):
            group = self.journal.group(self.chain_id, signer.address, nonce)
            description = group[0].description if group else f"nonce {nonce}"
            log.info("resuming in-flight transaction(s) at nonce %d: %s", nonce, description)
            try:
                result = self._await_group(signer, signer.address, nonce, description, progress=progress)
            except (ContractRevertError, NonceConsumedError) as exc:
                # A leftover that reverted or was superseded is final: report and go on with the new work.
                log.warning("earlier transaction at nonce %d ended: %s", nonce, exc)
                continue
            results.append(result)
            winner = self.journal.get(result.tx_hash)
            if winner is not None:
                self._recovered.append((winner, result))
        return results

    def resume(
        self,
        signer: Any,
        tx_hash: str,
        *,
        on_signed: Callable[[str, int], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> TxResult:
        """Drive the journaled transaction ``tx_hash`` (and its nonce group) to a final state.

        Re-broadcasts, fee-bumps at the same nonce and waits, like ``transact`` after signing.

        Raises:
            TransactionError: ``tx_hash`` is not in the journal (it was never broadcast by this client).
            ContractRevertError / NonceConsumedError / TxTimeoutError: as ``transact``.
        """
        record = self.journal.get(tx_hash)
        if record is None:
            raise TransactionError(f"transaction {tx_hash} is not in this client's journal")
        with account_lock(self.data_dir, self.chain_id, record.sender, on_wait=progress):
            return self._await_group(
                signer, record.sender, record.nonce, record.description, on_signed=on_signed, progress=progress
            )

    def receipt_of(self, tx_hash: str) -> Any:
        """The chain's receipt of ``tx_hash``, or None if it is not mined (or unknown)."""
        return self._receipt(tx_hash)

    def tx_state(self, tx_hash: str) -> tuple[str, Any]:
        """Fate of a journaled transaction's nonce group, read-only: ``(state, receipt)``.

        ``state`` is ``mined`` (receipt of the group member that was mined, status 1), ``failed``
        (mined and reverted), ``pending`` (nothing mined, nonce not used yet), ``dropped`` (nonce used
        by something else) or ``unknown`` (not in the journal).
        """
        record = self.journal.get(tx_hash)
        if record is None:
            return "unknown", None
        for member in reversed(self.journal.group(record.chain_id, record.sender, record.nonce)):
            receipt = self._receipt(member.tx_hash)
            if receipt is not None:
                return ("mined" if receipt["status"] == 1 else "failed"), receipt
        used = self._client.guarded(lambda: self.w3.eth.get_transaction_count(record.sender, "latest"))
        return ("dropped" if used > record.nonce else "pending"), None

    def _next_nonce(self, sender: str) -> int:
        # finish_pending() ran under the same lock, so every journaled nonce is final (mined, failed,
        # or consumed by another tx): the chain's pending count is authoritative.
        return int(self._client.guarded(lambda: self.w3.eth.get_transaction_count(sender, "pending")))

    def _sign_and_journal(
        self,
        signer: Any,
        *,
        to: str,
        data: str,
        value: int,
        nonce: int,
        gas: int,
        max_fee: int,
        priority_fee: int,
        kind: str,
        description: str,
        node: str | None,
        on_signed: Callable[[str, int], None] | None = None,
    ) -> TxRecord:
        # Order matters for crash safety: the caller's record (a settlement batch) learns the hash
        # first, then the journal, then the network. A crash between any two steps leaves either a
        # hash that provably never left this machine (not journaled) or one that is resumed.
        tx = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to,
            "data": data,
            "value": value,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority_fee,
        }
        signed = signer.sign_transaction(tx)
        tx_hash = _hex(signed.hash)
        if on_signed is not None:
            on_signed(tx_hash, nonce)
        self.journal.add(
            tx_hash=tx_hash,
            chain_id=self.chain_id,
            sender=signer.address,
            nonce=nonce,
            kind=kind,
            description=description,
            node=node,
            raw=_hex(signed.raw_transaction),
            to_address=to,
            data=data,
            value=value,
            gas_limit=gas,
            max_fee=max_fee,
            priority_fee=priority_fee,
        )
        record = self.journal.get(tx_hash)
        assert record is not None
        return record

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        except TRANSIENT_ERRORS as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None

    def _broadcast(self, record: TxRecord) -> str:
        """Send a journaled raw tx. Returns ``sent``, ``known`` (already there / nonce used) or ``underpriced``."""
        try:
            self.w3.eth.send_raw_transaction(record.raw)
        except TRANSIENT_ERRORS as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except Web3RPCError as exc:
            message = rpc_message(exc).lower()
            if any(phrase in message for phrase in _ALREADY_KNOWN + _NONCE_USED):
                # Our own bytes resent (a retry after a lost answer) or the nonce already mined:
                # the receipt lookup that follows tells whether it was this transaction.
                return "known"
            if "underpriced" in message:
                return "underpriced"
            if self._receipt(record.tx_hash) is not None:
                # Some nodes word "I have it already" their own way; a mined tx is never "dropped".
                return "known"
            self.journal.set_status(record.tx_hash, "dropped")
            if "insufficient funds" in message:
                raise NotEnoughGasFundsError(record.sender, self._client.balance(record.sender), record.gas_limit * record.max_fee) from None
            raise TransactionError(f"{record.description}: the node refused transaction {record.tx_hash}: {message}") from None
        self.journal.set_status(record.tx_hash, "sent")
        return "sent"

    def _bump(self, signer: Any, newest: TxRecord, on_signed: Callable[[str, int], None] | None) -> TxRecord | None:
        percent = self.profile.fee_bump_percent
        base, _, suggested = self._client.fee_caps()
        priority = max(math.ceil(newest.priority_fee * (100 + percent) / 100), newest.priority_fee + 1, suggested)
        max_fee = max(math.ceil(newest.max_fee * (100 + percent) / 100), newest.max_fee + 1, 2 * base + priority)
        cap = self._client.fee_cap()
        if cap is not None and max_fee > cap:
            log.warning("%s: fee bump to %d wei exceeds the cap %d wei; waiting instead", newest.description, max_fee, cap)
            return None
        replacement = self._sign_and_journal(
            signer,
            to=newest.to_address,
            data=newest.data,
            value=int(newest.value),
            nonce=newest.nonce,
            gas=newest.gas_limit,
            max_fee=max_fee,
            priority_fee=priority,
            kind=newest.kind,
            description=newest.description,
            node=newest.node,
            on_signed=on_signed,
        )
        log.warning(
            "%s: nonce %d unmined after %.0f s; replacing %s with %s (maxFee %d → %d, tip %d → %d)",
            newest.description, newest.nonce, self.profile.stuck_after, newest.tx_hash, replacement.tx_hash,
            newest.max_fee, max_fee, newest.priority_fee, priority,
        )
        return replacement

    def _await_group(
        self,
        signer: Any,
        sender: str,
        nonce: int,
        description: str,
        *,
        on_signed: Callable[[str, int], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> TxResult:
        deadline = time.monotonic() + self.profile.tx_timeout
        last_sent = 0.0
        while True:
            group = self.journal.group(self.chain_id, sender, nonce)
            live = [r for r in group if r.status != "dropped"]
            for member in reversed(group):
                receipt = self._receipt(member.tx_hash)
                if receipt is not None:
                    confirmed = self._confirm(member, receipt, progress)
                    if confirmed is not None:
                        return self._finish(member, confirmed, len(group) - 1)
                    break  # reorged out while confirming: keep waiting for the group
            else:
                used = int(self._client.guarded(lambda: self.w3.eth.get_transaction_count(sender, "latest")))
                if used > nonce:
                    # Receipts can lag the nonce on load-balanced RPCs: look once more before giving up.
                    time.sleep(self.poll_interval)
                    if not any(self._receipt(m.tx_hash) is not None for m in group):
                        self.journal.resolve_group(None, self.chain_id, sender, nonce)
                        raise NonceConsumedError(sender, nonce, description)
                    continue
                if not live:
                    raise TransactionError(f"{description}: every transaction at nonce {nonce} was refused by the node")
                newest = live[-1]
                now = time.monotonic()
                if last_sent == 0.0:
                    # First pass (fresh or resumed after a crash): the newest signed bytes go out again.
                    outcome = self._broadcast(newest)
                    last_sent = now
                    if outcome == "underpriced" and signer is not None:
                        self._bump(signer, newest, on_signed)
                        last_sent = 0.0
                elif now - last_sent >= self.profile.stuck_after and signer is not None:
                    replacement = self._bump(signer, newest, on_signed)
                    if replacement is not None:
                        outcome = self._broadcast(replacement)
                        if outcome == "underpriced":
                            self.journal.set_status(replacement.tx_hash, "dropped")
                    last_sent = now
                if now > deadline:
                    raise TxTimeoutError(description, newest.tx_hash, nonce, self.profile.tx_timeout)
                if progress is not None:
                    progress(f"{description}: waiting for {newest.tx_hash[:10]}… (nonce {nonce}) to be mined")
            time.sleep(self.poll_interval)

    def _confirm(self, record: TxRecord, receipt: Any, progress: Callable[[str], None] | None) -> Any:
        """Wait for the confirmation depth; return the receipt still valid at that depth, or None (reorg)."""
        needed = self.profile.confirmations
        deadline = time.monotonic() + self.profile.tx_timeout
        while True:
            depth = self._client.block_number() - int(receipt["blockNumber"]) + 1
            if depth >= needed:
                again = self._receipt(record.tx_hash)
                if again is None or again["blockHash"] != receipt["blockHash"]:
                    log.warning("%s: %s left block %d (reorg); waiting again", record.description, record.tx_hash, receipt["blockNumber"])
                    return None
                return again
            if time.monotonic() > deadline:
                raise TxTimeoutError(record.description, record.tx_hash, record.nonce, self.profile.tx_timeout)
            if progress is not None:
                progress(f"{record.description}: {depth}/{needed} confirmations")
            time.sleep(self.poll_interval)

    def _finish(self, record: TxRecord, receipt: Any, replacements: int) -> TxResult:
        ok = receipt["status"] == 1
        self.journal.set_status(
            record.tx_hash,
            "mined" if ok else "failed",
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0) or 0),
        )
        self.journal.resolve_group(record.tx_hash, self.chain_id, record.sender, record.nonce)
        if not ok:
            data = self._replay_revert(record, int(receipt["blockNumber"]))
            raise revert_error(record.description, data, tx_hash=record.tx_hash)
        log.info("%s: mined %s in block %d (gas %d)", record.description, record.tx_hash, receipt["blockNumber"], receipt["gasUsed"])
        result = TxResult(
            tx_hash=record.tx_hash,
            nonce=record.nonce,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0) or 0),
            replacements=replacements,
            receipt=receipt,
        )
        self.confirmed.append((record.description, result))
        return result

    def _replay_revert(self, record: TxRecord, block: int) -> str | None:
        """Revert data of a mined, failed tx, by replaying it as a call on the parent block's state."""
        try:
            self.w3.eth.call(
                {"from": record.sender, "to": record.to_address, "data": record.data, "value": int(record.value), "gas": record.gas_limit},
                block_identifier=max(block - 1, 0),
            )
        except ContractLogicError as exc:
            return revert_data_of(exc)
        except (Web3Exception, *TRANSIENT_ERRORS):
            return None
        return None


