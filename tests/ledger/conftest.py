"""A node with three paying channels on the test Anvil, and the tools to take blocks away from it.

Each test gets a fresh client home (empty journal and receipt store); the operator stakes and
registers the node and three consumers fund their escrow through the real ``kuota`` CLI, inside the
test's own chain snapshot (``fn_isolation``). ``LedgerNode`` drives the real service functions
(``settle_node``, ``reconcile``) with a real signer, real SQLite and real transactions; blocks are
removed with Anvil's ``anvil_reorg`` and ``evm_snapshot``/``evm_revert``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from nodeclient.chain import ChainClient
from nodeclient.config import NetworkProfile, PolicySettings
from nodeclient.keys import KeyManager, Secret
from nodeclient.receipts import Receipt, ReceiptSigner
from nodeclient.receipts.store import ReceiptStore
from nodeclient.settlement import (
    ReconcileReport,
    SettlementResult,
    deployment_domain,
    open_store,
    settle_node,
)
from tests.client.conftest import PASSWORD, ROLES, KuotaEnv, funded, kenv, make_home  # noqa: F401 - fixtures
from tests.conftest import anvil_private_key

CONSUMERS = {"consumer": 5, "consumer2": 6, "consumer3": 14}
SESSION = "0x" + "22" * 32


@dataclass
class LedgerNode:
    """One node's client (home, signer, store) and the chain it follows."""

    k: KuotaEnv
    w3: Web3
    signers: dict[str, ReceiptSigner]
    cumulative: dict[str, int] = field(default_factory=dict)
    clients: list[ChainClient] = field(default_factory=list)

    @property
    def node(self) -> str:
        return self.k.addresses["node"]

    def client(self, *, confirmations: int = 1, finality: str = "finalized") -> ChainClient:
        profile = NetworkProfile(
            name="ledger", rpc_url=self.k.rpc_url, chain_id=self.k.chain_id, manifest=self.k.manifest,
            confirmations=confirmations, finality=finality, stuck_after=5, tx_timeout=60,
        )
        client = ChainClient.connect(profile, self.k.home / "data", verify=False)
        self.clients.append(client)
        return client

    def signer(self) -> Any:
        keys = KeyManager(self.k.home / "data")
        return keys.unlock(keys.find("operator"), Secret(PASSWORD))

    def store(self, client: ChainClient) -> ReceiptStore:
        return open_store(client)

    def receive(self, store: ReceiptStore, client: ChainClient, role: str, amount: int) -> int:
        """The consumer ``role`` signs a receipt for ``amount`` more; the node stores it. Returns the new total."""
        self.cumulative[role] = self.cumulative.get(role, 0) + amount
        total = self.cumulative[role]
        signer = self.signers[role]
        receipt = Receipt(consumer=signer.address, node=self.node, session_id=SESSION, cumulative_bytes=total * 1000,
                          cumulative_amount=total, latency_ms=50, issued_at=1_700_000_000 + total // 1000)
        store.accept(signer.sign(receipt), expected_domain=deployment_domain(client), expected_node=self.node)
        return total

    def settle(self, client: ChainClient, store: ReceiptStore) -> tuple[ReconcileReport, SettlementResult | None]:
        report, _plan, result = settle_node(client, store, self.signer(), self.node, PolicySettings(), force=True)
        return report, result

    def channel_of(self, client: ChainClient, role: str) -> int:
        settlement = client.contract("ReceiptSettlement")
        return int(settlement.functions.channelOf(self.signers[role].address, self.node).call()[0])

    def paid_on_chain(self, client: ChainClient, role: str, from_block: int) -> int:
        """Σ paid of the canonical chain's ReceiptSettled events for the channel since ``from_block``."""
        events = client.contract("ReceiptSettlement").events.ReceiptSettled().get_logs(
            from_block=from_block, argument_filters={"consumer": self.signers[role].address, "node": self.node}
        )
        return sum(int(e["args"]["paid"]) for e in events)

    # -- taking blocks away ---------------------------------------------------------------------

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])

    def reorg(self, depth: int) -> None:
        """Replace the newest ``depth`` blocks with as many empty ones (their transactions are gone)."""
        head = self.w3.eth.block_number
        result = self.w3.provider.make_request("anvil_reorg", [depth, []])
        assert "error" not in result, result
        assert self.w3.eth.block_number == head

    def snapshot(self) -> str:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot: str) -> None:
        assert self.w3.provider.make_request("evm_revert", [snapshot])["result"] is True

    @contextmanager
    def miner(self, every: float = 0.05) -> Iterator[None]:
        """Mine a block every ``every`` seconds meanwhile, so confirmation depths above 1 are reached."""
        stop = threading.Event()
        w3 = Web3(Web3.HTTPProvider(self.k.rpc_url))

        def run() -> None:
            while not stop.wait(every):
                w3.provider.make_request("evm_mine", [])

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


@pytest.fixture
def ledger_node(funded, kuota, deployer, rpc_url, tmp_path) -> Iterator[LedgerNode]:  # noqa: F811 - fixture from tests.client
    """A staked, registered node with three funded consumers and a fresh client home."""
    k = make_home(tmp_path / "ledger", rpc_url, kuota.manifest, {**ROLES, "consumer3": CONSUMERS["consumer3"]})
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    w3.provider.make_request("anvil_setBalance", [k.addresses["consumer3"], hex(10**20)])
    kuota.payment_token.mint(k.addresses["consumer3"], 1_000 * 10**6, {"from": deployer})
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "100",
         "--region", "test", *k.pw(), "--yes")
    for role in CONSUMERS:
        k.ok("escrow", "deposit", "900", "--account", role, *k.pw(), "--yes")
    domain_client = ChainClient.connect(
        NetworkProfile(name="ledger", rpc_url=rpc_url, chain_id=k.chain_id, manifest=k.manifest), k.home / "data",
        verify=False,
    )
    domain = deployment_domain(domain_client)
    signers = {role: ReceiptSigner(bytes(Account.from_key(anvil_private_key(i)).key), domain) for role, i in CONSUMERS.items()}
    node = LedgerNode(k, w3, signers)
    yield node
    for client in node.clients:
        client.journal.close()
