"""The chain client: one web3 connection to one Kuota deployment, and safe transaction sending.

``ChainClient.connect(profile)`` checks, before anything else, that the RPC answers, that it serves
the profile's chain id, that the manifest is for that chain and matches the shipped ABIs, and that
the manifest's addresses hold the Kuota contracts wired to each other (a foreign contract at a
manifest address is refused, not called).

``transact`` is the only way the client spends gas. For one account, under a cross-process lock, it:

1. finishes whatever the journal says is still in flight from an earlier run (re-broadcasts the
   signed bytes, bumps fees at the same nonce, waits) — so a crash never leads to a second
   transaction doing the same thing under a new nonce;
2. estimates gas (a revert is decoded into the contract's custom error before anything is signed),
   prices it with EIP-1559 fees, and checks the balance covers ``gas × maxFee + value``;
3. signs, calls ``on_signed`` (the settlement records its batch's tx hash there), journals the signed
   transaction durably, and only then broadcasts;
4. waits for the receipt; a transaction unmined after ``stuck_after`` seconds is replaced at the
   same nonce with fees raised by ``fee_bump_percent`` (≥ 10 %, what nodes require to replace);
5. waits for the profile's confirmation depth, re-reads the receipt (a reorg may have removed it),
   and decodes a revert of a mined transaction by replaying it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from nodeclient.abi import load_abi
from nodeclient.chain.errors import (
    ChainIdMismatchError,
    ChainUnreachableError,
    ContractRevertError,
    FeeCapError,
    NotEnoughGasFundsError,
    TxTimeoutError,
    UnknownContractError,
    revert_data_of,
    revert_error,
)
from nodeclient.chain.journal import TxJournal, TxRecord, account_lock
from nodeclient.config import NetworkProfile
from nodeclient.deployment import Deployment, load_manifest
from nodeclient.errors import ChainError, KuotaError, TransactionError

__all__ = ["LOCAL_CHAIN_IDS", "ChainClient", "FeeQuote", "NonceConsumedError", "TxResult"]

log = logging.getLogger(__name__)

LOCAL_CHAIN_IDS = frozenset({31337, 1337})
_GWEI = 10**9
#: Priority fee used when the node cannot suggest one (eth_maxPriorityFeePerGas unsupported).
_FALLBACK_PRIORITY_FEE = 1 * _GWEI
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.HTTPError)


class NonceConsumedError(TransactionError):
    """The nonce of a journaled transaction was used by a transaction this client did not journal."""

    def __init__(self, sender: str, nonce: int, description: str) -> None:
        super().__init__(
            f"{description}: nonce {nonce} of {sender} was used by another transaction (not sent by this client); "
            "the journaled transaction was dropped and had no effect"
        )


@dataclass(frozen=True)
class FeeQuote:
    """What a transaction may cost: gas limit and EIP-1559 fee caps."""

    gas_limit: int
    base_fee: int
    max_fee: int
    priority_fee: int
    value: int = 0

    @property
    def max_cost(self) -> int:
        """Upper bound in wei (gas limit × maxFee + value): what the balance must cover."""
        return self.gas_limit * self.max_fee + self.value

    @property
    def expected_cost(self) -> int:
        """Likely gas cost in wei at the current base fee (gas limit × (base + tip))."""
        return self.gas_limit * min(self.max_fee, self.base_fee + self.priority_fee)

    def to_json(self) -> dict[str, int]:
        """Stable machine form."""
        return {
            "gasLimit": self.gas_limit,
            "baseFee": self.base_fee,
            "maxFeePerGas": self.max_fee,
            "maxPriorityFeePerGas": self.priority_fee,
            "value": self.value,
            "maxCost": self.max_cost,
            "expectedCost": self.expected_cost,
        }


@dataclass(frozen=True)
class TxResult:
    """A mined, confirmed, successful transaction."""

    tx_hash: str
    nonce: int
    block_number: int
    gas_used: int
    effective_gas_price: int
    replacements: int
    receipt: Any

    @property
    def gas_cost(self) -> int:
        """Wei paid for gas."""
        return self.gas_used * self.effective_gas_price

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "txHash": self.tx_hash,
            "nonce": self.nonce,
            "blockNumber": self.block_number,
            "gasUsed": self.gas_used,
            "effectiveGasPrice": self.effective_gas_price,
            "gasCost": self.gas_cost,
            "replacements": self.replacements,
        }


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


class ChainClient:
    """A connection to one deployment on one chain (see module docstring). Build with :meth:`connect`."""

    def __init__(self, w3: Web3, profile: NetworkProfile, deployment: Deployment, data_dir: Path) -> None:
        self.w3 = w3
        self.profile = profile
        self.deployment = deployment
        self.data_dir = Path(data_dir)
        self.chain_id = profile.chain_id
        self._contracts: dict[str, Any] = {}
        self._journal: TxJournal | None = None
        self.poll_interval = 0.1 if self.chain_id in LOCAL_CHAIN_IDS else 2.0

    def __repr__(self) -> str:
        return f"ChainClient(network={self.profile.name!r}, chain_id={self.chain_id}, rpc={self.profile.rpc_url!r})"

    # -- connecting -------------------------------------------------------------------------------

    @classmethod
    def connect(cls, profile: NetworkProfile, data_dir: Path | None = None, *, verify: bool = True) -> ChainClient:
        """Connect to ``profile``'s RPC and deployment; refuse a wrong chain or a foreign contract.

        Raises:
            ChainUnreachableError: the RPC does not answer (after bounded retries).
            ChainIdMismatchError: the RPC serves another chain id than the profile.
            ConfigError / NotFoundError: the manifest is missing, malformed, or for another chain.
            UnknownContractError: an address in the manifest is not the Kuota contract it should be.
        """
        if data_dir is None:
            from nodeclient.config import data_dir as default_data_dir

            data_dir = default_data_dir()
        w3 = make_web3(profile)
        actual = cls._rpc_chain_id(w3, profile.rpc_url)
        if actual != profile.chain_id:
            raise ChainIdMismatchError(profile.rpc_url, profile.chain_id, actual)
        deployment = load_manifest(profile.manifest, expected_chain_id=profile.chain_id)
        client = cls(w3, profile, deployment, Path(data_dir))
        if verify:
            client.verify_deployment()
        return client

    @staticmethod
    def _rpc_chain_id(w3: Web3, url: str) -> int:
        try:
            return int(w3.eth.chain_id)
        except _TRANSIENT as exc:
            raise ChainUnreachableError(url, type(exc).__name__) from None
        except (Web3Exception, ValueError, OSError) as exc:
            raise ChainUnreachableError(url, f"{type(exc).__name__}: {exc}") from None

    def verify_deployment(self) -> None:
        """Check that every manifest address holds code and the contracts point at each other."""
        for name, address in self.deployment.contracts.items():
            code = self._guard(lambda a=address: self.w3.eth.get_code(a))
            if len(code) == 0:
                raise UnknownContractError(name, address, "has no code on this chain")
        expected = self.deployment.contracts
        # Each contract must point at its manifest siblings: a foreign contract at one address
        # (or a manifest mixing two deployments) fails one of these before anything is sent.
        checks = [
            ("Staking", "stakeToken", "KuotaToken"),
            ("Staking", "registry", "NodeRegistry"),
            ("NodeRegistry", "staking", "Staking"),
            ("PaymentEscrow", "paymentToken", "PaymentToken"),
            ("PaymentEscrow", "registry", "NodeRegistry"),
            ("RewardPool", "rewardToken", "KuotaToken"),
            ("RewardPool", "registry", "NodeRegistry"),
            ("ReceiptSettlement", "escrow", "PaymentEscrow"),
            ("ReceiptSettlement", "registry", "NodeRegistry"),
            ("ReceiptSettlement", "rewardPool", "RewardPool"),
        ]
        for contract, view, target in checks:
            try:
                fn = getattr(self.contract(contract).functions, view)
            except AttributeError:
                continue  # the ABI shipped lacks this view: nothing to compare
            try:
                got = self.call(fn(), f"{contract}.{view}()")
            except (ContractRevertError, TransactionError):
                raise UnknownContractError(contract, expected[contract], f"does not answer {view}()") from None
            if to_checksum_address(got) != expected[target]:
                raise UnknownContractError(
                    contract, expected[contract], f"reports {view}() = {got}, not the manifest's {target} {expected[target]}"
                )
        settlement = self.contract("ReceiptSettlement")
        if hasattr(settlement.functions, "eip712Domain"):
            try:
                domain = self.call(settlement.functions.eip712Domain(), "ReceiptSettlement.eip712Domain()")
            except TransactionError:
                raise UnknownContractError(
                    "ReceiptSettlement", settlement.address, "does not answer eip712Domain()"
                ) from None
            name, chain_id, verifying = domain[1], domain[3], domain[4]
            if name != "Kuota" or chain_id != self.chain_id or to_checksum_address(verifying) != settlement.address:
                raise UnknownContractError(
                    "ReceiptSettlement",
                    settlement.address,
                    f"has EIP-712 domain ({name!r}, chain {chain_id}, {verifying}), not ('Kuota', {self.chain_id}, itself)",
                )

    @property
    def journal(self) -> TxJournal:
        """The transaction journal of this data dir (opened on first use)."""
        if self._journal is None:
            self._journal = TxJournal(self.data_dir / "txjournal.sqlite")
        return self._journal

    def contract(self, name: str) -> Any:
        """The web3 contract object for ``name`` at its manifest address, with the shipped ABI."""
        if name not in self._contracts:
            abi = load_abi("KuotaToken" if name == "PaymentToken" and not _has_abi("PaymentToken") else name)
            self._contracts[name] = self.w3.eth.contract(address=self.deployment.address(name), abi=abi)
        return self._contracts[name]

    # -- reads ------------------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], Any], description: str = "RPC request") -> Any:
        """Run an RPC read, translating transport failures into ``ChainUnreachableError``."""
        try:
            return fn()
        except _TRANSIENT as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except ContractLogicError as exc:
            raise revert_error(description, revert_data_of(exc)) from None
        except Web3RPCError as exc:
            raise ChainError(f"{description}: the RPC answered with an error: {_rpc_message(exc)}") from None

    def call(self, fn_call: Any, description: str = "call", block: Any = "latest") -> Any:
        """``eth_call`` a contract function; reverts decoded, transport failures translated."""
        return self._guard(lambda: fn_call.call(block_identifier=block), description)

    def block_number(self) -> int:
        """Latest block number."""
        return int(self._guard(lambda: self.w3.eth.block_number))

    def latest_block(self) -> Any:
        """Latest block (header fields)."""
        return self._guard(lambda: self.w3.eth.get_block("latest"))

    def block_timestamp(self, block: int) -> int:
        """Timestamp (unix seconds) of block number ``block``."""
        return int(self._guard(lambda: self.w3.eth.get_block(block))["timestamp"])

    def balance(self, address: str) -> int:
        """Native balance in wei."""
        return int(self._guard(lambda: self.w3.eth.get_balance(address)))

    def events(
        self,
        contract: str,
        event: str,
        argument_filters: dict[str, Any] | None = None,
        from_block: int | None = None,
        to_block: int | str = "latest",
    ) -> list[Any]:
        """Decoded logs of ``contract.event`` from the deployment block on (chunked if the RPC caps ranges)."""
        start = self.deployment.block_number if from_block is None else from_block
        end = self.block_number() if to_block == "latest" else int(to_block)
        ev = getattr(self.contract(contract).events, event)
        logs: list[Any] = []
        chunk = max(1, end - start + 1)
        cursor = start
        while cursor <= end:
            upper = min(end, cursor + chunk - 1)
            try:
                logs.extend(ev.get_logs(argument_filters=argument_filters, from_block=cursor, to_block=upper))
                cursor = upper + 1
            except _TRANSIENT as exc:
                raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
            except Web3RPCError as exc:
                if chunk == 1:
                    raise ChainError(f"eth_getLogs {contract}.{event}: {_rpc_message(exc)}") from None
                # Providers cap ranges with various messages: shrink and retry the same window.
                chunk = max(1, chunk // 4)
        return logs

    # -- fees and estimates ------------------------------------------------------------------------

    def fee_caps(self) -> tuple[int, int, int]:
        """(base fee, maxFeePerGas, maxPriorityFeePerGas) for a transaction sent now."""
        block = self.latest_block()
        base = int(block.get("baseFeePerGas", 0) or 0)
        try:
            priority = int(self.w3.eth.max_priority_fee)
        except _TRANSIENT as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except (Web3Exception, ValueError):
            priority = _FALLBACK_PRIORITY_FEE
        # 2 × base absorbs six consecutive full blocks (+12.5 % each) before the tx is underpriced.
        max_fee = 2 * base + priority
        cap = self._fee_cap()
        if cap is not None:
            if cap < base:
                raise FeeCapError(cap, base)
            max_fee = min(max_fee, cap)
            priority = min(priority, max_fee - base)
        return base, max_fee, priority

    def _fee_cap(self) -> int | None:
        return None if self.profile.max_fee_gwei is None else int(self.profile.max_fee_gwei * _GWEI)

    def estimate(
        self, sender: str, fn_call: Any, description: str, value: int = 0, *, gas_headroom: int = 0
    ) -> FeeQuote:
        """Estimate gas and fees of ``fn_call`` from ``sender``; a revert raises the decoded error.

        ``gas_headroom`` is added to the limit for calls whose cost can jump between estimate and
        inclusion by more than the 20 % margin covers (see ``nodeclient.settlement``).
        """
        try:
            gas = int(fn_call.estimate_gas({"from": sender, "value": value}))
        except _TRANSIENT as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except ContractLogicError as exc:
            raise revert_error(description, revert_data_of(exc)) from None
        except Web3RPCError as exc:
            message = _rpc_message(exc)
            if "insufficient funds" in message.lower():
                raise NotEnoughGasFundsError(sender, self.balance(sender), value) from None
            raise TransactionError(f"{description}: gas estimation failed: {message}") from None
        base, max_fee, priority = self.fee_caps()
        # 20 % headroom: state can change between estimate and inclusion (e.g. a channel settled).
        return FeeQuote(gas_limit=math.ceil(gas * 1.2) + 5_000 + gas_headroom, base_fee=base, max_fee=max_fee, priority_fee=priority, value=value)

    # -- sending ----------------------------------------------------------------------------------

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
        with account_lock(self.data_dir, self.chain_id, sender, on_wait=progress):
            self.finish_pending(signer, progress=progress)
            quote = self.estimate(sender, fn_call, description, value, gas_headroom=gas_headroom)
            balance = self.balance(sender)
            if balance < quote.max_cost:
                raise NotEnoughGasFundsError(sender, balance, quote.max_cost)
            nonce = self._next_nonce(sender)
            tx = fn_call.build_transaction(
                {
                    "from": sender,
                    "chainId": self.chain_id,
                    "nonce": nonce,
                    "gas": quote.gas_limit,
                    "maxFeePerGas": quote.max_fee,
                    "maxPriorityFeePerGas": quote.priority_fee,
                    "value": value,
                }
            )
            record = self._sign_and_journal(
                signer,
                to=tx["to"],
                data=_hex(tx["data"]),
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

    def finish_pending(self, signer: Any, *, progress: Callable[[str], None] | None = None) -> list[TxResult]:
        """Drive every journaled in-flight transaction of ``signer`` to a final state, lowest nonce first."""
        results: list[TxResult] = []
        for nonce in self.journal.pending_nonces(self.chain_id, signer.address):
            group = self.journal.group(self.chain_id, signer.address, nonce)
            description = group[0].description if group else f"nonce {nonce}"
            log.info("resuming in-flight transaction(s) at nonce %d: %s", nonce, description)
            try:
                results.append(self._await_group(signer, signer.address, nonce, description, progress=progress))
            except (ContractRevertError, NonceConsumedError) as exc:
                # A leftover that reverted or was superseded is final: report and go on with the new work.
                log.warning("earlier transaction at nonce %d ended: %s", nonce, exc)
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
        used = self._guard(lambda: self.w3.eth.get_transaction_count(record.sender, "latest"))
        return ("dropped" if used > record.nonce else "pending"), None

    def _next_nonce(self, sender: str) -> int:
        # finish_pending() ran under the same lock, so every journaled nonce is final (mined, failed,
        # or consumed by another tx): the chain's pending count is authoritative.
        return int(self._guard(lambda: self.w3.eth.get_transaction_count(sender, "pending")))

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
        except _TRANSIENT as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None

    def _broadcast(self, record: TxRecord) -> str:
        """Send a journaled raw tx. Returns ``sent``, ``known`` (already there / nonce used) or ``underpriced``."""
        try:
            self.w3.eth.send_raw_transaction(record.raw)
        except _TRANSIENT as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except Web3RPCError as exc:
            message = _rpc_message(exc).lower()
            if "already known" in message or "known transaction" in message or "already imported" in message:
                return "known"
            if "nonce too low" in message or "nonce has already been used" in message:
                return "known"
            if "underpriced" in message:
                return "underpriced"
            self.journal.set_status(record.tx_hash, "dropped")
            if "insufficient funds" in message:
                raise NotEnoughGasFundsError(record.sender, self.balance(record.sender), record.gas_limit * record.max_fee) from None
            raise TransactionError(f"{record.description}: the node refused transaction {record.tx_hash}: {message}") from None
        self.journal.set_status(record.tx_hash, "sent")
        return "sent"

    def _bump(self, signer: Any, newest: TxRecord, on_signed: Callable[[str, int], None] | None) -> TxRecord | None:
        percent = self.profile.fee_bump_percent
        base, _, suggested = self.fee_caps()
        priority = max(math.ceil(newest.priority_fee * (100 + percent) / 100), newest.priority_fee + 1, suggested)
        max_fee = max(math.ceil(newest.max_fee * (100 + percent) / 100), newest.max_fee + 1, 2 * base + priority)
        cap = self._fee_cap()
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
                used = int(self._guard(lambda: self.w3.eth.get_transaction_count(sender, "latest")))
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
            depth = self.block_number() - int(receipt["blockNumber"]) + 1
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
        return TxResult(
            tx_hash=record.tx_hash,
            nonce=record.nonce,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0) or 0),
            replacements=replacements,
            receipt=receipt,
        )

    def _replay_revert(self, record: TxRecord, block: int) -> str | None:
        """Revert data of a mined, failed tx, by replaying it as a call on the parent block's state."""
        try:
            self.w3.eth.call(
                {"from": record.sender, "to": record.to_address, "data": record.data, "value": int(record.value), "gas": record.gas_limit},
                block_identifier=max(block - 1, 0),
            )
        except ContractLogicError as exc:
            return revert_data_of(exc)
        except (Web3Exception, *_TRANSIENT):
            return None
        return None


def _rpc_message(exc: BaseException) -> str:
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message", exc))
    return str(getattr(exc, "user_message", None) or exc)


def _has_abi(name: str) -> bool:
    try:
        load_abi(name)
    except KuotaError:
        return False
    return True


def make_web3(profile: NetworkProfile) -> Web3:
    """A web3 HTTP connection with bounded retries and exponential backoff on transient faults."""
    provider = Web3.HTTPProvider(
        profile.rpc_url,
        request_kwargs={"timeout": profile.request_timeout},
        exception_retry_configuration=ExceptionRetryConfiguration(
            # web3 counts total attempts; the profile counts retries after the first attempt.
            errors=_TRANSIENT, retries=profile.rpc_retries + 1, backoff_factor=0.25
        ),
    )
    return Web3(provider)
