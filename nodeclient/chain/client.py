"""The chain client: one web3 connection to one Kuota deployment, and safe transaction sending.

``ChainClient.connect(profile)`` checks, before anything else, that the RPC answers, that it serves
the profile's chain id, that the manifest is for that chain and matches the shipped ABIs, and that
the manifest's addresses hold the Kuota contracts wired to each other (a foreign contract at a
manifest address is refused, not called).

Reads go through :meth:`ChainClient.call` and friends (reverts decoded, transport faults turned into
``ChainUnreachableError``); event history through the one adaptive ``eth_getLogs`` reader
(:mod:`nodeclient.chain.getlogs`). Spending gas is :class:`~nodeclient.chain.sending.TxSender`'s job:
``transact``, ``finish_pending``, ``resume`` and ``tx_state`` here hand over to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception, Web3RPCError

from nodeclient.abi import load_abi
from nodeclient.chain.errors import (
    ChainIdMismatchError,
    ChainUnreachableError,
    ContractRevertError,
    FeeCapError,
    NonceConsumedError,
    NotEnoughGasFundsError,
    UnknownContractError,
    revert_data_of,
    revert_error,
)
from nodeclient.chain.getlogs import AdaptiveLogReader, LogQueryError
from nodeclient.chain.journal import TxJournal
from nodeclient.chain.results import FeeQuote, TxResult
from nodeclient.chain.rpc import TRANSIENT_ERRORS, connect_profile, rpc_message
from nodeclient.chain.sending import TxSender
from nodeclient.config import NetworkProfile
from nodeclient.deployment import Deployment, load_manifest
from nodeclient.errors import ChainError, KuotaError, TransactionError

__all__ = ["LOCAL_CHAIN_IDS", "ChainClient", "FeeQuote", "NonceConsumedError", "TxResult"]

LOCAL_CHAIN_IDS = frozenset({31337, 1337})
_GWEI = 10**9
#: Priority fee used when the node cannot suggest one (eth_maxPriorityFeePerGas unsupported).
_FALLBACK_PRIORITY_FEE = 1 * _GWEI
# Spans of the client's own event reads (earnings, rewards): small deployments fit in one call.
_LOG_SPAN = 10_000
_LOG_MAX_SPAN = 100_000
# A client read is interactive: after the connection's own retries, give up quickly.
_LOG_MAX_FAILURES = 3
# Reads after a confirmed spend (see ChainClient.guarded): extra attempts and their first back-off.
_READ_RETRIES_AFTER_SPEND = 3
_READ_BACKOFF = 0.25


class ChainClient:
    """A connection to one deployment on one chain (see module docstring). Build with :meth:`connect`."""

    def __init__(self, w3: Web3, profile: NetworkProfile, deployment: Deployment, data_dir: Path) -> None:
        self.w3 = w3
        self.profile = profile
        self.deployment = deployment
        self.data_dir = Path(data_dir)
        self.chain_id = profile.chain_id
        self._contracts: dict[str, Any] = {}
        self.sender = TxSender(self)
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
        w3 = connect_profile(profile)
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
        except TRANSIENT_ERRORS as exc:
            raise ChainUnreachableError(url, type(exc).__name__) from None
        except (Web3Exception, ValueError, OSError) as exc:
            raise ChainUnreachableError(url, f"{type(exc).__name__}: {exc}") from None

    def verify_deployment(self) -> None:
        """Check that every manifest address holds code and the contracts point at each other."""
        for name, address in self.deployment.contracts.items():
            code = self.guarded(lambda a=address: self.w3.eth.get_code(a))
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
        return self.sender.journal

    def contract(self, name: str) -> Any:
        """The web3 contract object for ``name`` at its manifest address, with the shipped ABI."""
        if name not in self._contracts:
            abi = load_abi("KuotaToken" if name == "PaymentToken" and not _has_abi("PaymentToken") else name)
            self._contracts[name] = self.w3.eth.contract(address=self.deployment.address(name), abi=abi)
        return self._contracts[name]

    # -- reads ------------------------------------------------------------------------------------

    def guarded(self, fn: Callable[[], Any], description: str = "RPC request") -> Any:
        """Run an RPC read, translating transport failures into ``ChainUnreachableError``.

        Once this process has confirmed a transaction, a read that fails would make the command
        report an error for a spend that happened, and an operator's rerun would spend again; so
        reads then try a few more times, and a read that still fails names what was confirmed.
        """
        attempts = 1 + (_READ_RETRIES_AFTER_SPEND if self.sender.confirmed else 0)
        for attempt in range(attempts):
            try:
                return fn()
            except TRANSIENT_ERRORS as exc:
                if attempt + 1 < attempts:
                    time.sleep(_READ_BACKOFF * 2**attempt)
                    continue
                raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__ + self._confirmed_note()) from None
            except ContractLogicError as exc:
                raise revert_error(description, revert_data_of(exc)) from None
            except Web3RPCError as exc:
                raise ChainError(f"{description}: the RPC answered with an error: {rpc_message(exc)}") from None
        raise AssertionError("unreachable")

    def _confirmed_note(self) -> str:
        if not self.sender.confirmed:
            return ""
        done = "; ".join(f"{result.tx_hash} ({description})" for description, result in self.sender.confirmed)
        return f"; already confirmed by this command, do not send again: {done}"

    def call(self, fn_call: Any, description: str = "call", block: Any = "latest") -> Any:
        """``eth_call`` a contract function; reverts decoded, transport failures translated."""
        return self.guarded(lambda: fn_call.call(block_identifier=block), description)

    def block_number(self) -> int:
        """Latest block number."""
        return int(self.guarded(lambda: self.w3.eth.block_number))

    def latest_block(self) -> Any:
        """Latest block (header fields)."""
        return self.guarded(lambda: self.w3.eth.get_block("latest"))

    def block_timestamp(self, block: int) -> int:
        """Timestamp (unix seconds) of block number ``block``."""
        return int(self.guarded(lambda: self.w3.eth.get_block(block))["timestamp"])

    def balance(self, address: str) -> int:
        """Native balance in wei."""
        return int(self.guarded(lambda: self.w3.eth.get_balance(address)))

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
        reader = AdaptiveLogReader(initial_span=_LOG_SPAN, max_span=_LOG_MAX_SPAN, max_failures=_LOG_MAX_FAILURES)
        try:
            return reader.read(
                lambda lo, hi: list(ev.get_logs(argument_filters=argument_filters, from_block=lo, to_block=hi)), start, end
            )
        except LogQueryError as exc:
            if exc.kind == "transient":
                raise ChainUnreachableError(self.profile.rpc_url, exc.reason) from None
            raise ChainError(f"eth_getLogs {contract}.{event} blocks {exc.from_block}..{exc.to_block}: {exc.reason}") from None

    # -- fees and estimates ------------------------------------------------------------------------

    def fee_caps(self) -> tuple[int, int, int]:
        """(base fee, maxFeePerGas, maxPriorityFeePerGas) for a transaction sent now."""
        block = self.latest_block()
        base = int(block.get("baseFeePerGas", 0) or 0)
        try:
            priority = int(self.w3.eth.max_priority_fee)
        except TRANSIENT_ERRORS as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except (Web3Exception, ValueError):
            priority = _FALLBACK_PRIORITY_FEE
        # 2 × base absorbs six consecutive full blocks (+12.5 % each) before the tx is underpriced.
        max_fee = 2 * base + priority
        cap = self.fee_cap()
        if cap is not None:
            if cap < base:
                raise FeeCapError(cap, base)
            max_fee = min(max_fee, cap)
            priority = min(priority, max_fee - base)
        return base, max_fee, priority

    def fee_cap(self) -> int | None:
        """The profile's hard cap on maxFeePerGas in wei, if it sets one."""
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
        except TRANSIENT_ERRORS as exc:
            raise ChainUnreachableError(self.profile.rpc_url, type(exc).__name__) from None
        except ContractLogicError as exc:
            raise revert_error(description, revert_data_of(exc)) from None
        except Web3RPCError as exc:
            message = rpc_message(exc)
            if "insufficient funds" in message.lower():
                raise NotEnoughGasFundsError(sender, self.balance(sender), value) from None
            raise TransactionError(f"{description}: gas estimation failed: {message}") from None
        base, max_fee, priority = self.fee_caps()
        # 20 % headroom: state can change between estimate and inclusion (e.g. a channel settled).
        return FeeQuote(gas_limit=math.ceil(gas * 1.2) + 5_000 + gas_headroom, base_fee=base, max_fee=max_fee, priority_fee=priority, value=value)

    # -- sending ----------------------------------------------------------------------------------

    # -- sending (TxSender) ----------------------------------------------------------------------

    def transact(self, signer: Any, fn_call: Any, description: str, **kwargs: Any) -> TxResult:
        """Send ``fn_call`` from ``signer`` and wait until it is confirmed (:meth:`TxSender.transact`)."""
        return self.sender.transact(signer, fn_call, description, **kwargs)

    def finish_pending(self, signer: Any, *, progress: Callable[[str], None] | None = None) -> list[TxResult]:
        """Drive every journaled in-flight transaction of ``signer`` to a final state (:meth:`TxSender.finish_pending`)."""
        return self.sender.finish_pending(signer, progress=progress)

    def resume(self, signer: Any, tx_hash: str, **kwargs: Any) -> TxResult:
        """Drive the journaled transaction ``tx_hash`` to a final state (:meth:`TxSender.resume`)."""
        return self.sender.resume(signer, tx_hash, **kwargs)

    def tx_state(self, tx_hash: str) -> tuple[str, Any]:
        """Fate of a journaled transaction's nonce group, read-only (:meth:`TxSender.tx_state`)."""
        return self.sender.tx_state(tx_hash)

    def receipt_of(self, tx_hash: str) -> Any:
        """The chain's receipt of ``tx_hash``, or None if it is not mined (or unknown)."""
        return self.sender.receipt_of(tx_hash)


def _has_abi(name: str) -> bool:
    try:
        load_abi(name)
    except KuotaError:
        return False
    return True
