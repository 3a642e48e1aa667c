"""The gas-floor probes (contracts/test/GasFloorProbe.sol) are honest: they really verify and settle.

`bench/floors.py` measures the floor of each protocol model with these probes; a floor is only a
floor if the probe does the model's irreducible work. These tests pin that work: the EIP-712 digest
is the client's, a wrong signer reverts, a stale receipt pays nothing, a receipt pays cumulative −
settled, the pooled model pays min(owed, balance), the channel-funded model never pays more than was
funded, and a claim mints weight × paid / totalCapped to the payout exactly once. The packed batches
(161 bytes a receipt, built here with the node client's `pack_receipt_args`) are held to the same checks
and, run side by side with the ABI batches on a second probe, end in the same state.
"""

from __future__ import annotations

import brownie
import pytest
from brownie import ClaimFloorProbe, FloorPayoutRegistry, FloorRewardToken, SettlementFloorProbe, chain
from eth_account import Account
from eth_utils import keccak
from unit_helpers import UNIT, custom_error, plain

from nodeclient.receipts import Receipt
from nodeclient.receipts.packing import PACKED_RECEIPT_LENGTH, pack_receipt_args
from nodeclient.receipts.signing import (
    ReceiptDomain,
    receipt_digest,
    recover_signer,
    sign_digest,
    sign_receipt,
)

EPOCH_LENGTH = 3_600
FEE_BPS = 500


@pytest.fixture(scope="module")
def probe(deployer):
    return SettlementFloorProbe.deploy(0, EPOCH_LENGTH, {"from": deployer})


@pytest.fixture(scope="module")
def claims(deployer):
    return ClaimFloorProbe.deploy({"from": deployer})


@pytest.fixture(scope="module")
def keys():
    return [Account.from_key(keccak(text=f"kuota floor test consumer {i}")) for i in range(3)]


@pytest.fixture(scope="module")
def node():
    return Account.from_key(keccak(text="kuota floor test node")).address


@pytest.fixture(scope="module")
def node2():
    return Account.from_key(keccak(text="kuota floor test node 2")).address


def _domain(probe, name: str = "KuotaFloor") -> ReceiptDomain:
    return ReceiptDomain(chain_id=chain.id, verifying_contract=probe.address, name=name)


def _signed(probe, key, node, nbytes, amount, *, signer=None, domain_name="KuotaFloor"):
    """(struct args, signature) of a receipt for ``key``'s channel to ``node``; ``signer`` signs it."""
    receipt = Receipt(
        consumer=key.address,
        node=node,
        session_id="0x" + "11" * 32,
        cumulative_bytes=nbytes,
        cumulative_amount=amount,
        latency_ms=20,
        issued_at=chain.time(),
    )
    domain = _domain(probe, domain_name)
    if signer is None:
        signature = sign_receipt(receipt, key.key, domain).signature
    else:
        signature = "0x" + sign_digest(receipt_digest(receipt, domain), signer.key).hex()
    args = (key.address, node, receipt.session_id, nbytes, amount, 20, receipt.issued_at)
    return args, signature, receipt


def _wrong_signer(probe, signed, node=None) -> str:
    """The ``SettlementInvalidSigner`` the probe raises for ``signed`` when it hashes it as a receipt to
    ``node`` under its own domain: the address recovered from that digest is not the consumer."""
    _, signature, receipt = signed
    hashed = receipt if node is None else receipt.model_copy(update={"node": node})
    recovered = recover_signer(receipt_digest(hashed, _domain(probe)), signature)
    return custom_error("SettlementInvalidSigner(address,address)", receipt.consumer, recovered)


def _pack(*signed) -> bytes:
    """The ``packed`` argument of the probe's packed batches for ``_signed`` results, in order."""
    return b"".join(pack_receipt_args(args, signature) for args, signature, _ in signed)


def test_digest_is_the_clients_eip712_digest(probe, keys, node):
    args, _, receipt = _signed(probe, keys[0], node, 1_000, UNIT)
    assert bytes(probe.hashReceipt(args)) == receipt_digest(receipt, _domain(probe))
    assert (
        probe.RECEIPT_TYPEHASH()
        == "0x"
        + keccak(
            text="Receipt(address consumer,address node,bytes32 sessionId,uint256 cumulativeBytes,"
            "uint256 cumulativeAmount,uint32 latencyMs,uint64 issuedAt)"
        ).hex()
    )


def test_wrong_signer_reverts_in_every_variant(probe, keys, node, stranger):
    probe.fund(keys[0].address, 100 * UNIT, {"from": stranger})
    probe.fundChannel(keys[0].address, node, 100 * UNIT, {"from": stranger})
    args, sig, _ = _signed(probe, keys[0], node, 1_000, UNIT, signer=keys[1])
    error = custom_error("SettlementInvalidSigner(address,address)", keys[0].address, keys[1].address)
    with brownie.reverts(error):
        probe.settlePooled(args, sig, {"from": stranger})
    with brownie.reverts(error):
        probe.settleManyPooled([args], [sig], {"from": stranger})
    with brownie.reverts(error):
        probe.settleManyPooledLogged([args], [sig], b"\x01" * 32, {"from": stranger})
    with brownie.reverts(error):
        probe.settleManyChannelFunded([args], [sig], {"from": stranger})
    # Signed by the consumer but under the real settlement's domain name: another digest, refused.
    other_domain = _signed(probe, keys[0], node, 1_000, UNIT, domain_name="Kuota")
    args, sig, _ = other_domain
    with brownie.reverts(_wrong_signer(probe, other_domain)):
        probe.settlePooled(args, sig, {"from": stranger})
    assert plain(probe.channelOf(keys[0].address, node)) == (0, 0)


def test_pays_cumulative_minus_settled_and_accounts_once(probe, keys, node, stranger):
    consumer = keys[0].address
    probe.fund(consumer, 100 * UNIT, {"from": stranger})
    args, sig, _ = _signed(probe, keys[0], node, 1_000, 5 * UNIT)
    assert probe.settlePooled(args, sig, {"from": stranger}).return_value == 5 * UNIT
    args, sig, _ = _signed(probe, keys[0], node, 3_000, 8 * UNIT)
    tx = probe.settlePooled(args, sig, {"from": stranger})
    assert tx.return_value == 3 * UNIT
    assert plain(probe.channelOf(consumer, node)) == (8 * UNIT, 3_000)
    assert probe.availableOf(consumer) == 92 * UNIT
    fee = 5 * UNIT * FEE_BPS // 10_000 + 3 * UNIT * FEE_BPS // 10_000
    assert probe.creditOf(node) == 8 * UNIT - fee
    assert probe.accruedFees() == fee
    epoch = probe.currentEpoch()
    assert probe.weightOf(node, epoch) == fee
    assert probe.epochWeight(epoch) == fee


def test_stale_receipt_pays_nothing(probe, keys, node, stranger):
    consumer = keys[0].address
    probe.fund(consumer, 100 * UNIT, {"from": stranger})
    args, sig, _ = _signed(probe, keys[0], node, 2_000, 5 * UNIT)
    probe.settlePooled(args, sig, {"from": stranger})
    credit, balance = probe.creditOf(node), probe.availableOf(consumer)
    # The same receipt again, and an older one: the single settle reverts, batches skip them.
    old_args, old_sig, _ = _signed(probe, keys[0], node, 1_000, 4 * UNIT)
    for a, s in ((args, sig), (old_args, old_sig)):
        with brownie.reverts(
            custom_error(
                "SettlementStaleReceipt(address,address,uint256,uint256)", consumer, node, a[4], 5 * UNIT
            )
        ):
            probe.settlePooled(a, s, {"from": stranger})
        assert probe.settleManyPooled([a], [s], {"from": stranger}).return_value == 0
        tx = probe.settleManyPooledLogged([a], [s], b"\x02" * 32, {"from": stranger})
        assert tx.return_value == 0
        assert "ReceiptSettled" not in tx.events
        assert tx.events["ReceiptSkipped"]["settledAmount"] == 5 * UNIT
        assert tx.events["BatchSettled"]["settledCount"] == 0
    # More amount but fewer bytes than settled: stale too.
    args, sig, _ = _signed(probe, keys[0], node, 1_500, 9 * UNIT)
    assert probe.settleManyPooled([args], [sig], {"from": stranger}).return_value == 0
    assert (probe.creditOf(node), probe.availableOf(consumer)) == (credit, balance)
    assert plain(probe.channelOf(consumer, node)) == (5 * UNIT, 2_000)


def test_pooled_pays_min_of_owed_and_balance(probe, keys, node, stranger):
    consumer = keys[1].address
    probe.fund(consumer, 2 * UNIT, {"from": stranger})
    args, sig, _ = _signed(probe, keys[1], node, 1_000, 5 * UNIT)
    assert probe.settlePooled(args, sig, {"from": stranger}).return_value == 2 * UNIT
    assert probe.availableOf(consumer) == 0
    assert plain(probe.channelOf(consumer, node)) == (2 * UNIT, 1_000)
    # After a top-up the same receipt settles the rest, and no more.
    probe.fund(consumer, 10 * UNIT, {"from": stranger})
    assert probe.settleManyPooled([args], [sig], {"from": stranger}).return_value == 3 * UNIT
    assert probe.availableOf(consumer) == 7 * UNIT
    assert plain(probe.channelOf(consumer, node)) == (5 * UNIT, 1_000)


def test_channel_funded_never_pays_more_than_funded(probe, keys, node, node2, stranger):
    consumer = keys[2].address
    probe.fundChannel(consumer, node, 4 * UNIT, {"from": stranger})
    args, sig, _ = _signed(probe, keys[2], node, 1_000, 10 * UNIT)
    assert probe.settleManyChannelFunded([args], [sig], {"from": stranger}).return_value == 4 * UNIT
    args, sig, _ = _signed(probe, keys[2], node, 2_000, 12 * UNIT)
    assert probe.settleManyChannelFunded([args], [sig], {"from": stranger}).return_value == 0
    assert plain(probe.fundedChannelOf(consumer, node)) == (4 * UNIT, 4 * UNIT, 2_000)
    # The escrow belongs to the channel: the same consumer's channel to another node holds nothing.
    args, sig, _ = _signed(probe, keys[2], node2, 1_000, UNIT)
    assert probe.settleManyChannelFunded([args], [sig], {"from": stranger}).return_value == 0
    # Funding it again pays the rest of what the receipt owes, cumulative − settled.
    probe.fundChannel(consumer, node, 100 * UNIT, {"from": stranger})
    args, sig, _ = _signed(probe, keys[2], node, 3_000, 13 * UNIT)
    assert probe.settleManyChannelFunded([args], [sig], {"from": stranger}).return_value == 9 * UNIT
    assert plain(probe.fundedChannelOf(consumer, node)) == (104 * UNIT, 13 * UNIT, 3_000)


def test_batch_rejects_another_node_and_logs_every_field(probe, keys, node, node2, stranger):
    for key in keys:
        probe.fund(key.address, 100 * UNIT, {"from": stranger})
    signed = [_signed(probe, key, node, 1_000, (i + 1) * UNIT) for i, key in enumerate(keys)]
    args, sigs = [s[0] for s in signed], [s[1] for s in signed]
    other, other_sig, _ = _signed(probe, keys[0], node2, 1_000, UNIT)
    with brownie.reverts(
        custom_error("SettlementBatchNodeMismatch(uint256,address,address)", 1, node, node2)
    ):
        probe.settleManyPooled([args[0], other], [sigs[0], other_sig], {"from": stranger})
    tx = probe.settleManyPooledLogged(args, sigs, b"\x03" * 32, {"from": stranger})
    assert tx.return_value == 6 * UNIT
    events = tx.events["ReceiptSettled"]
    assert len(events) == 3
    for event, (a, sig, receipt) in zip(events, signed, strict=True):
        assert (event["consumer"], event["node"], event["cumulativeAmount"], event["cumulativeBytes"]) == (
            a[0],
            a[1],
            a[4],
            a[3],
        )
        assert bytes(event["digest"]) == receipt_digest(receipt, _domain(probe))
        assert bytes(event["signature"]) == bytes.fromhex(sig[2:])
        assert event["paid"] == a[4]
        assert event["fee"] == a[4] * FEE_BPS // 10_000
    batch = tx.events["BatchSettled"]
    assert (batch["receiptCount"], batch["settledCount"], batch["paid"]) == (3, 3, 6 * UNIT)


@pytest.mark.parametrize(
    "variant", ["claimMintInline", "claimMintInlineNoEvent", "claimViaToken", "claimViaTokenAndRegistry"]
)
def test_claim_mints_share_once(claims, node, accounts, stranger, variant):
    payout = accounts[12].address
    weight, paid, total = 3 * 10**15, 10_000 * 10**18, 7 * 10**15
    claims.setPayout(node, payout, {"from": stranger})
    FloorPayoutRegistry.at(claims.registry()).setPayout(node, payout, {"from": stranger})
    claims.setEpoch(4, paid, total, {"from": stranger})
    claims.setRecord(node, 4, weight, {"from": stranger})
    minted = FloorRewardToken.at(claims.token()) if variant.startswith("claimViaToken") else claims
    before = minted.balanceOf(payout)
    tx = getattr(claims, variant)(node, 4, {"from": stranger})
    assert tx.return_value == weight * paid // total
    assert minted.balanceOf(payout) - before == weight * paid // total
    assert plain(claims.recordOf(node, 4)) == (weight, True)
    if variant != "claimMintInlineNoEvent":
        assert tx.events["RewardClaimed"]["amount"] == weight * paid // total
        assert tx.events["RewardClaimed"]["payout"] == payout
    with brownie.reverts(custom_error("FloorAlreadyClaimed(address,uint256)", node, 4)):
        getattr(claims, variant)(node, 4, {"from": stranger})


def test_claim_refuses_unknown_node_and_outside_minter(claims, node2, stranger):
    with brownie.reverts(custom_error("FloorUnknownNode(address)", node2)):
        claims.claimMintInline(node2, 4, {"from": stranger})
    with brownie.reverts(custom_error("FloorUnknownNode(address)", node2)):
        claims.claimViaTokenAndRegistry(node2, 4, {"from": stranger})
    token = FloorRewardToken.at(claims.token())
    assert token.minter() == claims.address
    with brownie.reverts(custom_error("FloorNotMinter(address)", stranger)):
        token.mint(stranger, 1, {"from": stranger})


# --- packed calldata (as ReceiptSettlement.settleManyPacked) ------------------------------------


def test_packed_layout_matches_the_real_settlement(probe):
    assert probe.PACKED_RECEIPT_LENGTH() == PACKED_RECEIPT_LENGTH == 161


def test_packed_wrong_signer_reverts_in_every_variant(probe, keys, node, node2, stranger):
    probe.fund(keys[0].address, 100 * UNIT, {"from": stranger})
    probe.fundChannel(keys[0].address, node, 100 * UNIT, {"from": stranger})
    error = custom_error("SettlementInvalidSigner(address,address)", keys[0].address, keys[1].address)
    packed = _pack(_signed(probe, keys[0], node, 1_000, UNIT, signer=keys[1]))
    with brownie.reverts(error):
        probe.settleManyPooledPacked(node, packed, {"from": stranger})
    with brownie.reverts(error):
        probe.settleManyPooledLoggedPacked(node, packed, b"\x01" * 32, {"from": stranger})
    with brownie.reverts(error):
        probe.settleManyChannelFundedPacked(node, packed, {"from": stranger})
    # A wrong signature after a good one reverts the whole batch.
    good = _signed(probe, keys[0], node, 1_000, UNIT)
    with brownie.reverts(error):
        probe.settleManyPooledPacked(
            node,
            _pack(good, _signed(probe, keys[0], node, 2_000, 2 * UNIT, signer=keys[1])),
            {"from": stranger},
        )
    # Signed for node2 but sent in node's batch: the probe hashes it with `node`, another digest.
    for_node2 = _signed(probe, keys[0], node2, 1_000, UNIT)
    signed_by_other_domain = _signed(probe, keys[0], node, 1_000, UNIT, domain_name="Kuota")
    for bad, error in (
        (for_node2, _wrong_signer(probe, for_node2, node=node)),
        (signed_by_other_domain, _wrong_signer(probe, signed_by_other_domain)),
    ):
        for fn, extra in (
            (probe.settleManyPooledPacked, ()),
            (probe.settleManyPooledLoggedPacked, (b"\x01" * 32,)),
            (probe.settleManyChannelFundedPacked, ()),
        ):
            with brownie.reverts(error):
                fn(node, _pack(bad), *extra, {"from": stranger})
    assert plain(probe.channelOf(keys[0].address, node)) == (0, 0)
    assert plain(probe.fundedChannelOf(keys[0].address, node)) == (100 * UNIT, 0, 0)
    assert probe.creditOf(node) == 0


def test_packed_rejects_bad_lengths(probe, keys, node, stranger):
    packed = _pack(_signed(probe, keys[0], node, 1_000, UNIT))
    for fn, extra in (
        (probe.settleManyPooledPacked, ()),
        (probe.settleManyPooledLoggedPacked, (b"\x01" * 32,)),
        (probe.settleManyChannelFundedPacked, ()),
    ):
        with brownie.reverts(custom_error("SettlementEmptyBatch()")):
            fn(node, b"", *extra, {"from": stranger})
        for cut in (packed[:-1], packed + b"\x00"):
            with brownie.reverts(custom_error("SettlementPackedLength(uint256,uint256)", len(cut), 161)):
                fn(node, cut, *extra, {"from": stranger})


def test_packed_pays_cumulative_minus_settled_and_accounts_once(probe, keys, node, stranger):
    consumer = keys[0].address
    probe.fund(consumer, 100 * UNIT, {"from": stranger})
    first = _signed(probe, keys[0], node, 1_000, 5 * UNIT)
    assert probe.settleManyPooledPacked(node, _pack(first), {"from": stranger}).return_value == 5 * UNIT
    # Two later receipts of the same channel in one batch: each pays only what it adds.
    batch = _pack(
        _signed(probe, keys[0], node, 3_000, 8 * UNIT), _signed(probe, keys[0], node, 4_000, 11 * UNIT)
    )
    assert probe.settleManyPooledPacked(node, batch, {"from": stranger}).return_value == 6 * UNIT
    assert plain(probe.channelOf(consumer, node)) == (11 * UNIT, 4_000)
    assert probe.availableOf(consumer) == 89 * UNIT
    fee = sum(a * FEE_BPS // 10_000 for a in (5 * UNIT, 3 * UNIT, 3 * UNIT))
    assert probe.creditOf(node) == 11 * UNIT - fee
    assert probe.accruedFees() == fee
    epoch = probe.currentEpoch()
    assert probe.weightOf(node, epoch) == fee
    assert probe.epochWeight(epoch) == fee


def test_packed_stale_receipt_is_skipped(probe, keys, node, stranger):
    consumer = keys[0].address
    probe.fund(consumer, 100 * UNIT, {"from": stranger})
    current = _signed(probe, keys[0], node, 2_000, 5 * UNIT)
    probe.settleManyPooledPacked(node, _pack(current), {"from": stranger})
    credit, balance = probe.creditOf(node), probe.availableOf(consumer)
    older = _signed(probe, keys[0], node, 1_000, 4 * UNIT)
    fewer_bytes = _signed(probe, keys[0], node, 1_500, 9 * UNIT)  # more amount, fewer bytes: stale too
    for signed in (current, older, fewer_bytes):
        packed = _pack(signed)
        assert probe.settleManyPooledPacked(node, packed, {"from": stranger}).return_value == 0
        tx = probe.settleManyPooledLoggedPacked(node, packed, b"\x02" * 32, {"from": stranger})
        assert tx.return_value == 0
        assert "ReceiptSettled" not in tx.events
        skipped = tx.events["ReceiptSkipped"]
        assert (
            skipped["consumer"],
            skipped["node"],
            skipped["cumulativeAmount"],
            skipped["settledAmount"],
        ) == (
            consumer,
            node,
            signed[0][4],
            5 * UNIT,
        )
        assert bytes(skipped["digest"]) == receipt_digest(signed[2], _domain(probe))
        batch = tx.events["BatchSettled"]
        assert (batch["receiptCount"], batch["settledCount"], batch["paid"]) == (1, 0, 0)
    # A stale receipt beside a fresh one: skipped, the fresh one still settles.
    fresh = _signed(probe, keys[1], node, 1_000, 2 * UNIT)
    probe.fund(keys[1].address, 100 * UNIT, {"from": stranger})
    assert (
        probe.settleManyPooledPacked(node, _pack(older, fresh), {"from": stranger}).return_value == 2 * UNIT
    )
    assert probe.creditOf(node) - credit == 2 * UNIT - 2 * UNIT * FEE_BPS // 10_000
    assert probe.availableOf(consumer) == balance
    assert plain(probe.channelOf(consumer, node)) == (5 * UNIT, 2_000)


def test_packed_pooled_pays_min_of_owed_and_balance(probe, keys, node, stranger):
    consumer = keys[1].address
    probe.fund(consumer, 2 * UNIT, {"from": stranger})
    packed = _pack(_signed(probe, keys[1], node, 1_000, 5 * UNIT))
    assert probe.settleManyPooledPacked(node, packed, {"from": stranger}).return_value == 2 * UNIT
    assert probe.availableOf(consumer) == 0
    assert plain(probe.channelOf(consumer, node)) == (2 * UNIT, 1_000)
    # Drained: the same receipt pays nothing (but is not stale), then the rest after a top-up.
    tx = probe.settleManyPooledLoggedPacked(node, packed, b"\x04" * 32, {"from": stranger})
    assert tx.return_value == 0
    assert tx.events["ReceiptSettled"]["paid"] == 0
    probe.fund(consumer, 10 * UNIT, {"from": stranger})
    assert probe.settleManyPooledPacked(node, packed, {"from": stranger}).return_value == 3 * UNIT
    assert probe.availableOf(consumer) == 7 * UNIT
    assert plain(probe.channelOf(consumer, node)) == (5 * UNIT, 1_000)


def test_packed_channel_funded_never_pays_more_than_funded(probe, keys, node, node2, stranger):
    consumer = keys[2].address
    probe.fundChannel(consumer, node, 4 * UNIT, {"from": stranger})
    fn = probe.settleManyChannelFundedPacked
    assert (
        fn(node, _pack(_signed(probe, keys[2], node, 1_000, 10 * UNIT)), {"from": stranger}).return_value
        == 4 * UNIT
    )
    assert (
        fn(node, _pack(_signed(probe, keys[2], node, 2_000, 12 * UNIT)), {"from": stranger}).return_value == 0
    )
    assert plain(probe.fundedChannelOf(consumer, node)) == (4 * UNIT, 4 * UNIT, 2_000)
    # The escrow belongs to the channel: the same consumer's channel to another node holds nothing.
    assert fn(node2, _pack(_signed(probe, keys[2], node2, 1_000, UNIT)), {"from": stranger}).return_value == 0
    # Stale (fewer bytes) is skipped; after a top-up a receipt pays cumulative − settled.
    assert (
        fn(node, _pack(_signed(probe, keys[2], node, 1_500, 20 * UNIT)), {"from": stranger}).return_value == 0
    )
    probe.fundChannel(consumer, node, 100 * UNIT, {"from": stranger})
    assert (
        fn(node, _pack(_signed(probe, keys[2], node, 3_000, 13 * UNIT)), {"from": stranger}).return_value
        == 9 * UNIT
    )
    assert plain(probe.fundedChannelOf(consumer, node)) == (104 * UNIT, 13 * UNIT, 3_000)
    # The slot holds 96-bit amounts and 64-bit byte counts; the packed fields are wider.
    with brownie.reverts(custom_error("SettlementValueTooLarge(uint256)", 2**96)):
        fn(node, _pack(_signed(probe, keys[2], node, 4_000, 2**96)), {"from": stranger})
    with brownie.reverts(custom_error("SettlementValueTooLarge(uint256)", 2**64)):
        fn(node, _pack(_signed(probe, keys[2], node, 2**64, 14 * UNIT)), {"from": stranger})


def test_packed_logged_events_are_the_abi_variants(probe, keys, node, stranger):
    for key in keys:
        probe.fund(key.address, 100 * UNIT, {"from": stranger})
    signed = [_signed(probe, key, node, 1_000, (i + 1) * UNIT) for i, key in enumerate(keys)]
    tx = probe.settleManyPooledLoggedPacked(node, _pack(*signed), b"\x03" * 32, {"from": stranger})
    assert tx.return_value == 6 * UNIT
    events = tx.events["ReceiptSettled"]
    assert len(events) == 3
    for event, (a, sig, receipt) in zip(events, signed, strict=True):
        assert (
            event["consumer"],
            event["node"],
            bytes(event["sessionId"]),
            event["cumulativeBytes"],
            event["cumulativeAmount"],
            event["latencyMs"],
            event["issuedAt"],
        ) == (a[0], a[1], bytes.fromhex(a[2][2:]), a[3], a[4], a[5], a[6])
        assert bytes(event["digest"]) == receipt_digest(receipt, _domain(probe))
        assert bytes(event["signature"]) == bytes.fromhex(sig[2:])
        assert event["paid"] == a[4]
        assert event["fee"] == a[4] * FEE_BPS // 10_000
    batch = tx.events["BatchSettled"]
    assert bytes(batch["bundleRoot"]) == b"\x03" * 32
    assert (batch["receiptCount"], batch["settledCount"], batch["paid"]) == (3, 3, 6 * UNIT)
    assert batch["fee"] == sum(a[4] * FEE_BPS // 10_000 for a, _, _ in signed)


@pytest.mark.parametrize("model", ["settleManyPooled", "settleManyPooledLogged", "settleManyChannelFunded"])
def test_packed_ends_in_the_abi_variants_state(probe, deployer, keys, node, stranger, model):
    """The same batches (fresh, repeated, stale, partial, drained) through the ABI variant on one probe
    and the packed variant on another: the same return values, channels, balances and totals."""
    twin = SettlementFloorProbe.deploy(0, EPOCH_LENGTH, {"from": deployer})
    funded = model == "settleManyChannelFunded"
    for p in (probe, twin):
        for i, key in enumerate(keys):
            if funded:
                p.fundChannel(key.address, node, (3 + 4 * i) * UNIT, {"from": stranger})
            else:
                p.fund(key.address, (3 + 4 * i) * UNIT, {"from": stranger})
    steps = [
        [(0, 1_000, 2 * UNIT), (1, 1_000, UNIT), (2, 500, UNIT)],
        [(0, 1_000, 2 * UNIT), (0, 2_000, 5 * UNIT), (1, 900, 3 * UNIT)],  # repeat, partial, stale
        [(2, 3_000, 20 * UNIT), (1, 4_000, 9 * UNIT), (0, 2_500, 6 * UNIT)],
    ]
    extra = (b"\x05" * 32,) if model.endswith("Logged") else ()
    for step in steps:
        outcome = {}
        for p, packed in ((probe, False), (twin, True)):
            signed = [_signed(p, keys[i], node, nbytes, amount) for i, nbytes, amount in step]
            if packed:
                tx = getattr(p, model + "Packed")(node, _pack(*signed), *extra, {"from": stranger})
            else:
                tx = getattr(p, model)(
                    [s[0] for s in signed], [s[1] for s in signed], *extra, {"from": stranger}
                )
            events = None
            if extra:
                events = (
                    [plain((e["consumer"], e["paid"], e["fee"])) for e in tx.events["ReceiptSettled"]]
                    if "ReceiptSettled" in tx.events
                    else [],
                    plain(tx.events["BatchSettled"]["settledCount"]),
                )
            outcome[packed] = (tx.return_value, events)
        assert outcome[True] == outcome[False]
    for key in keys:
        view = "fundedChannelOf" if funded else "channelOf"
        assert plain(getattr(probe, view)(key.address, node)) == plain(getattr(twin, view)(key.address, node))
        assert probe.availableOf(key.address) == twin.availableOf(key.address)
    epoch = probe.currentEpoch()
    assert (probe.creditOf(node), probe.accruedFees(), probe.weightOf(node, epoch)) == (
        twin.creditOf(node),
        twin.accruedFees(),
        twin.weightOf(node, epoch),
    )
    assert probe.creditOf(node) > 0
