"""ReceiptStore: acceptance rules, durability settings, schema, and the settlement batch ledger.

Real SQLite files in tmp_path and real signatures; every refusal is checked to leave the file unchanged.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from receipt_helpers import (
    CONSUMER,
    CONSUMER2,
    CONSUMER2_KEY,
    CONSUMER_KEY,
    NODE,
    OTHER_NODE,
    SETTLEMENT,
    db_snapshot,
    make_receipt,
)

from nodeclient.errors import StoreError
from nodeclient.receipts import (
    BatchConflictError,
    BatchNotFoundError,
    BatchStateError,
    DomainMismatchError,
    InvalidSignerError,
    NodeMismatchError,
    ReceiptFieldError,
    ReceiptNotFoundError,
    ReceiptOutcome,
    ReceiptSigner,
    ReceiptStore,
    SignatureError,
    SignedReceipt,
    StaleReceiptError,
    StoreCorruptError,
    StoreSchemaError,
    load_receipts,
    receipt_digest,
    receipt_domain,
    sign_digest,
    sign_receipt,
)
from nodeclient.receipts.model import SECP256K1_N
from nodeclient.receipts.store import SCHEMA_VERSION

TX1 = "0x" + "a1" * 32
TX2 = "0x" + "a2" * 32


@pytest.fixture
def store(tmp_path, domain):
    s = ReceiptStore(tmp_path / "receipts.db")
    yield s
    s.close()


@pytest.fixture(scope="module")
def signer(domain):
    return ReceiptSigner(CONSUMER_KEY, domain)


@pytest.fixture(scope="module")
def signer2(domain):
    return ReceiptSigner(CONSUMER2_KEY, domain)


def _accept(store, signer, amount, **kw):
    return store.accept(signer.sign(make_receipt(amount, consumer=signer.address, **kw)),
                        expected_domain=signer.domain, expected_node=kw.get("node", NODE))


def test_accept_is_durable_across_reopen(tmp_path, domain, signer):
    path = tmp_path / "r.db"
    with ReceiptStore(path) as store:
        stored = _accept(store, signer, 10)
        assert stored.created and stored.id == 1
        assert stored.digest == receipt_digest(stored.receipt, domain)
    with ReceiptStore(path) as again:
        assert again.get(stored.digest).receipt == stored.receipt
        assert again.domain == domain
        assert again.integrity_problems() == []


def test_store_uses_wal_full_sync_foreign_keys_and_versioned_schema(store):
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_exact_duplicate_is_idempotent(store, signer):
    first = _accept(store, signer, 10)
    snap = db_snapshot(store.path)
    again = _accept(store, signer, 10)
    assert not again.created and again.id == first.id and again.digest == first.digest
    assert db_snapshot(store.path) == snap and store.count() == 1


@pytest.mark.parametrize(("amount", "kw", "field"), [
    (10, {"session": "0x" + "22" * 32}, "cumulativeAmount"),  # same amount, other session: not a duplicate
    (9, {}, "cumulativeAmount"),
    (11, {"nbytes": 9_999}, "cumulativeBytes"),
    (11, {"issued_at": 1_699_999_999}, "issuedAt"),
])
def test_receipt_that_does_not_advance_is_refused_and_store_unchanged(store, signer, amount, kw, field):
    _accept(store, signer, 10)
    snap = db_snapshot(store.path)
    with pytest.raises(StaleReceiptError) as info:
        _accept(store, signer, amount, **kw)
    assert info.value.field == field and f"'{field}'" in str(info.value)
    assert db_snapshot(store.path) == snap


def test_zero_amount_first_receipt_is_refused(store, signer):
    snap = db_snapshot(store.path)
    with pytest.raises(StaleReceiptError, match="'cumulativeAmount' is 0"):
        _accept(store, signer, 0)
    assert db_snapshot(store.path) == snap


def test_wrong_node_is_refused(store, signer):
    signed = signer.sign(make_receipt(10, node=OTHER_NODE))
    snap = db_snapshot(store.path)
    with pytest.raises(NodeMismatchError, match=OTHER_NODE):
        store.accept(signed, expected_domain=signer.domain, expected_node=NODE)
    assert db_snapshot(store.path) == snap


def test_expected_node_lower_case_is_accepted(store, signer):
    assert store.accept(signer.sign(make_receipt(10)), expected_domain=signer.domain,
                        expected_node=NODE.lower()).created


def test_receipt_signed_for_another_domain_is_refused(store, signer, domain):
    foreign = sign_receipt(make_receipt(10), CONSUMER_KEY, receipt_domain(1, SETTLEMENT))
    snap = db_snapshot(store.path)
    with pytest.raises(InvalidSignerError):
        store.accept(foreign, expected_domain=domain, expected_node=NODE)
    assert db_snapshot(store.path) == snap


def test_store_bound_to_one_domain_refuses_another(store, signer, domain):
    _accept(store, signer, 10)
    other = receipt_domain(1, SETTLEMENT)
    signed = sign_receipt(make_receipt(11), CONSUMER_KEY, other)
    snap = db_snapshot(store.path)
    with pytest.raises(DomainMismatchError, match="chainId 31337"):
        store.accept(signed, expected_domain=other, expected_node=NODE)
    assert db_snapshot(store.path) == snap


def test_wrong_signer_is_refused(store, domain):
    # A receipt naming CONSUMER but signed with CONSUMER2's key (built without the signing guard).
    receipt = make_receipt(10)
    bad_sig = "0x" + sign_digest(receipt_digest(receipt, domain), CONSUMER2_KEY).hex()
    forged = SignedReceipt.model_validate({**receipt.to_json_dict(), "signature": bad_sig})
    snap = db_snapshot(store.path)
    with pytest.raises(InvalidSignerError, match=CONSUMER2):
        store.accept(forged, expected_domain=domain, expected_node=NODE)
    assert db_snapshot(store.path) == snap


def test_high_s_signature_is_refused_even_if_model_was_bypassed(store, signer, domain):
    signed = signer.sign(make_receipt(10))
    sig = signed.signature_bytes
    twin = sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
    malleated = SignedReceipt.model_construct(**{**signed.model_dump(), "signature": "0x" + twin.hex()})
    snap = db_snapshot(store.path)
    with pytest.raises(SignatureError, match="high s"):
        store.accept(malleated, expected_domain=domain, expected_node=NODE)
    assert db_snapshot(store.path) == snap


def test_accept_many_is_all_or_nothing_and_names_the_index(store, signer):
    batch = [signer.sign(make_receipt(a)) for a in (1, 2, 3)] + [signer.sign(make_receipt(2, issued_at=2_000_000_000))]
    snap = db_snapshot(store.path)
    with pytest.raises(StaleReceiptError) as info:
        store.accept_many(batch, expected_domain=signer.domain, expected_node=NODE)
    assert info.value.index == 3 and str(info.value).startswith("Receipt 3:")
    assert db_snapshot(store.path) == snap
    stored = store.accept_many(batch[:3], expected_domain=signer.domain, expected_node=NODE)
    assert [s.id for s in stored] == [1, 2, 3] and store.count() == 3


def test_channels_are_tracked_per_consumer(store, signer, signer2):
    for amount in (5, 7, 9):
        _accept(store, signer, amount)
    _accept(store, signer2, 4)
    channels = {c.consumer: c for c in store.channels()}
    assert channels[CONSUMER].latest.receipt.cumulative_amount == 9
    assert channels[CONSUMER2].latest.receipt.cumulative_amount == 4
    assert store.latest(CONSUMER, NODE).receipt.cumulative_amount == 9
    assert [s.receipt.cumulative_amount for s in store.list_receipts(consumer=CONSUMER)] == [5, 7, 9]
    assert len(store.list_receipts(limit=2)) == 2
    assert [s.id for s in store.list_receipts(after_id=2)] == [3, 4]
    assert {c.consumer for c in store.unsettled_channels()} == {CONSUMER, CONSUMER2}


def test_receipts_are_append_only_at_the_sql_level(store, signer):
    _accept(store, signer, 10)
    conn = sqlite3.connect(str(store.path))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE receipts SET cumulative_amount = '0' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM receipts")
    conn.close()


def test_export_roundtrips_through_the_file_parser(store, signer, signer2, tmp_path):
    for amount in (1, 2, 3):
        _accept(store, signer, amount)
    _accept(store, signer2, 8)
    out = tmp_path / "export.jsonl"
    assert store.export(out) == 4
    assert load_receipts(out) == [s.receipt for s in store.list_receipts()]
    assert store.export(tmp_path / "one.jsonl", consumer=CONSUMER2) == 1


def test_unknown_digest_is_not_found(store):
    with pytest.raises(ReceiptNotFoundError):
        store.get(b"\x00" * 32)
    with pytest.raises(BatchNotFoundError):
        store.batch(99)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    ReceiptStore(path).close()
    conn = sqlite3.connect(str(path))
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreSchemaError, match="newer than this Kuota"):
        ReceiptStore(path)


def test_foreign_sqlite_file_and_garbage_file_are_refused(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(str(other))
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreSchemaError, match="not a Kuota receipt store"):
        ReceiptStore(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreSchemaError, match="not a SQLite database"):
        ReceiptStore(garbage)


def test_concurrent_threads_and_two_connections(tmp_path, signer, signer2):
    path = tmp_path / "shared.db"
    a, b = ReceiptStore(path), ReceiptStore(path)
    errors = []

    def run(store, s):
        try:
            for amount in range(1, 41):
                _accept(store, s, amount)
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a, signer)), threading.Thread(target=run, args=(b, signer2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert a.count() == 80 and a.integrity_problems() == []
    a.close()
    b.close()


# ------------------------------------------------------------------ settlement batches


@pytest.fixture
def two_channels(store, signer, signer2):
    for amount in (10, 20, 30):
        _accept(store, signer, amount)
    for amount in (5, 6):
        _accept(store, signer2, amount)
    return store.latest(CONSUMER, NODE), store.latest(CONSUMER2, NODE)


def test_batch_happy_path_settles_channels(store, two_channels):
    latest1, latest2 = two_channels
    batch_id = store.begin_batch([latest1, latest2])
    assert store.batch(batch_id).state == "pending"
    assert store.unsettled_channels() == []  # both are in an open batch
    assert {c.consumer for c in store.unsettled_channels(include_open=True)} == {CONSUMER, CONSUMER2}
    store.mark_submitted(batch_id, TX1, 7)
    assert [b.id for b in store.pending_batches()] == [batch_id]
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 30, 1), ReceiptOutcome("settled", 6, 0)],
                         tx_hash=TX1, block_number=12)
    record = store.batch(batch_id)
    assert record.state == "confirmed" and record.block_number == 12 and record.tx_hash == TX1
    assert [i.outcome.paid for i in record.items] == [30, 6]
    assert store.pending_batches() == [] and store.unsettled_channels() == []
    channel = store.channel(CONSUMER, NODE)
    assert channel.settled_amount == 30 and channel.settled_bytes == 30_000
    assert store.integrity_problems() == []


def test_partial_payment_leaves_the_rest_unsettled(store, two_channels):
    latest1, _ = two_channels
    batch_id = store.begin_batch([latest1])
    store.mark_submitted(batch_id, TX1, 1)
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 12, 0)])
    channel = store.channel(CONSUMER, NODE)
    assert channel.settled_amount == 12 and channel.unsettled_amount == 18
    # The same receipt settles the rest after a top-up; its bundle is just itself.
    assert [s.id for s in store.bundle_receipts([latest1])] == [latest1.id]
    again = store.begin_batch([latest1])
    store.mark_submitted(again, TX2, 2)
    store.mark_confirmed(again, {latest1.digest: ReceiptOutcome("settled", 18, 0)})
    assert store.channel(CONSUMER, NODE).settled_amount == 30
    assert store.integrity_problems() == []


def test_bundle_receipts_span_since_previous_settlement(store, signer, two_channels):
    latest1, latest2 = two_channels
    assert [s.receipt.cumulative_amount for s in store.bundle_receipts([latest1, latest2])] == [10, 20, 30, 5, 6]
    batch_id = store.begin_batch([store.list_receipts(consumer=CONSUMER)[1]])  # settle amount 20
    store.mark_submitted(batch_id, TX1, 1)
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 20, 0)])
    _accept(store, signer, 40)
    newest = store.latest(CONSUMER, NODE)
    assert [s.receipt.cumulative_amount for s in store.bundle_receipts([newest])] == [30, 40]


def test_channel_cannot_be_in_two_open_batches(store, signer, two_channels):
    latest1, latest2 = two_channels
    assert latest2.receipt.consumer == CONSUMER2
    first = store.begin_batch([latest1])
    _accept(store, signer, 99)
    snap = db_snapshot(store.path)
    with pytest.raises(BatchConflictError, match=f"batch {first}"):
        store.begin_batch([store.latest(CONSUMER, NODE), latest2])
    assert db_snapshot(store.path) == snap


@pytest.mark.parametrize("bad", ["empty", "two_nodes", "same_channel", "unknown", "settled"])
def test_begin_batch_refuses_bad_batches(store, signer, two_channels, bad):
    latest1 = two_channels[0]
    if bad == "settled":
        b = store.begin_batch([latest1])
        store.mark_submitted(b, TX1, 1)
        store.mark_confirmed(b, [ReceiptOutcome("settled", 30, 0)])
    if bad == "two_nodes":
        store2_receipt = signer.sign(make_receipt(1, node=OTHER_NODE))
        store.accept(store2_receipt, expected_domain=signer.domain, expected_node=OTHER_NODE)
    items = {
        "empty": [],
        "two_nodes": [latest1, store.latest(CONSUMER, OTHER_NODE) if bad == "two_nodes" else None],
        "same_channel": [latest1, store.list_receipts(consumer=CONSUMER)[0]],
        "unknown": [b"\x01" * 32],
        "settled": [latest1],
    }[bad]
    snap = db_snapshot(store.path)
    with pytest.raises(StoreError):
        store.begin_batch(items)
    assert db_snapshot(store.path) == snap


def test_resubmission_only_at_the_same_nonce(store, two_channels):
    batch_id = store.begin_batch([two_channels[0]])
    store.mark_submitted(batch_id, TX1, 5)
    store.mark_submitted(batch_id, TX1, 5)  # repeat: no-op
    store.mark_submitted(batch_id, TX2, 5)  # fee-bump replacement
    record = store.batch(batch_id)
    assert record.tx_hashes == (TX1, TX2) and record.tx_hash == TX2 and record.nonce == 5
    snap = db_snapshot(store.path)
    with pytest.raises(BatchStateError, match="never re-sent|nonce 5"):
        store.mark_submitted(batch_id, "0x" + "a3" * 32, 6)
    assert db_snapshot(store.path) == snap
    # The first transaction (not the replacement) may be the one mined.
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 30, 1)], tx_hash=TX1)
    assert store.batch(batch_id).tx_hash == TX1


def test_confirm_refusals_leave_store_unchanged(store, two_channels):
    latest1, latest2 = two_channels
    batch_id = store.begin_batch([latest1, latest2])
    snap = db_snapshot(store.path)
    with pytest.raises(BatchStateError, match="'pending'"):
        store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 1, 0)] * 2)
    store.mark_submitted(batch_id, TX1, 3)
    snap = db_snapshot(store.path)
    for outcomes, kw in [
        ([ReceiptOutcome("settled", 1, 0)], {}),  # too few
        ({b"\x09" * 32: ReceiptOutcome("skipped")}, {}),  # wrong digests
        ([ReceiptOutcome("settled", 31, 0), ReceiptOutcome("settled", 1, 0)], {}),  # paid > owed
        ([ReceiptOutcome("settled", 1, 0)] * 2, {"tx_hash": TX2}),  # unknown tx
    ]:
        with pytest.raises(StoreError):
            store.mark_confirmed(batch_id, outcomes, **kw)
        assert db_snapshot(store.path) == snap
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 30, 1), ReceiptOutcome("skipped")])
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 30, 1), ReceiptOutcome("skipped")])  # idempotent
    with pytest.raises(BatchStateError, match="different outcomes"):
        store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 29, 1), ReceiptOutcome("skipped")])
    with pytest.raises(BatchStateError):
        store.mark_failed(batch_id, "too late")
    assert store.channel(CONSUMER2, NODE).settled_amount == 0  # skipped pays nothing


def test_outcome_values_are_validated():
    with pytest.raises(StoreError):
        ReceiptOutcome("settled", 5, 6)
    with pytest.raises(StoreError):
        ReceiptOutcome("skipped", 5, 0)
    with pytest.raises(StoreError):
        ReceiptOutcome("maybe")  # type: ignore[arg-type]


def test_failed_and_skipped_batches_release_channels(store, two_channels):
    latest1 = two_channels[0]
    b1 = store.begin_batch([latest1])
    store.mark_skipped(b1, "gas too high")
    b2 = store.begin_batch([latest1])
    store.mark_submitted(b2, TX1, 4)
    with pytest.raises(BatchStateError):
        store.mark_skipped(b2, "it was sent")
    store.mark_failed(b2, "reverted: EnforcedPause()")
    assert {c.consumer for c in store.unsettled_channels()} == {CONSUMER, CONSUMER2}
    assert store.batch(b2).reason == "reverted: EnforcedPause()"
    assert store.channel(CONSUMER, NODE).settled_amount == 0
    with pytest.raises(BatchStateError):
        store.mark_submitted(b2, TX2, 4)
    assert store.integrity_problems() == []


def test_sql_trigger_refuses_illegal_batch_transitions(store, two_channels):
    batch_id = store.begin_batch([two_channels[0]])
    conn = sqlite3.connect(str(store.path))
    with pytest.raises(sqlite3.IntegrityError, match="illegal settlement batch state"):
        conn.execute("UPDATE batches SET state = 'confirmed', tx_hash = 'x', nonce = 1 WHERE id = ?", (batch_id,))
    conn.close()


def test_integrity_check_detects_partial_outcomes(store, two_channels):
    batch_id = store.begin_batch([two_channels[0], two_channels[1]])
    conn = sqlite3.connect(str(store.path))
    conn.execute("UPDATE batch_items SET outcome = 'settled', paid = '5' WHERE batch_id = ? AND position = 0",
                 (batch_id,))
    conn.commit()
    conn.close()
    problems = store.integrity_problems()
    assert any("outcomes recorded for only part" in p for p in problems)
    with pytest.raises(StoreCorruptError):
        store.check_integrity()


def test_integrity_check_detects_ledger_drift(store, two_channels):
    conn = sqlite3.connect(str(store.path))
    conn.execute("UPDATE channels SET settled_amount = ? WHERE consumer = ?", (f"{5:039d}", CONSUMER))
    conn.commit()
    conn.close()
    assert any("settled_amount 5 != confirmed payments 0" in p for p in store.integrity_problems())


def test_sync_channel_records_chain_view_separately(store, two_channels):
    store.sync_channel(CONSUMER, NODE, 25, 25_000)
    channel = store.channel(CONSUMER, NODE)
    assert channel.settled_amount == 0 and channel.chain_settled_amount == 25
    assert channel.unsettled_amount == 5
    with pytest.raises(StoreError, match="no receipts"):
        store.sync_channel(CONSUMER, OTHER_NODE, 1, 1)
    for bad in (-1, 2**128, "5", 1.5):
        with pytest.raises(StoreError, match="settled_amount"):
            store.sync_channel(CONSUMER, NODE, bad, 1)
    assert store.integrity_problems() == []


def test_failed_migration_leaves_the_file_at_its_old_version(tmp_path, monkeypatch, signer):
    # A migration that breaks half-way (here: its last statement is invalid SQL) must not leave a
    # half-built schema behind: the DDL and the user_version bump share one transaction.
    from nodeclient.receipts import store_schema

    path = tmp_path / "m.db"
    broken = (*store_schema._MIGRATIONS[:-1], store_schema._MIGRATIONS[-1] + "\nCREATE TABLE broken (;\n")
    monkeypatch.setattr(store_schema, "_MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        ReceiptStore(path)
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()
    monkeypatch.undo()
    with ReceiptStore(path) as store:
        assert _accept(store, signer, 1).created and store.integrity_problems() == []


@pytest.mark.parametrize("where", ["missing_dir", "directory"])
def test_unopenable_path_is_a_clear_store_error(tmp_path, where):
    path = tmp_path / "absent" / "r.db" if where == "missing_dir" else tmp_path
    with pytest.raises(StoreSchemaError, match="cannot be opened"):
        ReceiptStore(path)


def test_receipt_from_the_future_is_refused_when_a_limit_is_set(store, signer):
    import time as _time

    now = int(_time.time())
    future = signer.sign(make_receipt(10, issued_at=now + 3600))
    snap = db_snapshot(store.path)
    with pytest.raises(ReceiptFieldError, match="'issuedAt'.*ahead of this node's clock"):
        store.accept(future, expected_domain=signer.domain, expected_node=NODE, max_future_seconds=300)
    assert db_snapshot(store.path) == snap
    assert store.accept(future, expected_domain=signer.domain, expected_node=NODE, max_future_seconds=7200).created


# ------------------------------------------------------------------ following the chain (reorgs)

BLOCK1 = "0x" + "b1" * 32
BLOCK2 = "0x" + "b2" * 32


def _confirmed_batch(store, receipts, outcomes, tx=TX1, nonce=7, block=12, block_hash=BLOCK1):
    batch_id = store.begin_batch(receipts)
    store.mark_submitted(batch_id, tx, nonce)
    store.mark_confirmed(batch_id, outcomes, tx_hash=tx, block_number=block, block_hash=block_hash)
    return batch_id


def test_reopened_batch_takes_its_payments_back_and_can_confirm_again(store, two_channels):
    latest1, latest2 = two_channels
    batch_id = _confirmed_batch(store, [latest1, latest2], [ReceiptOutcome("settled", 30, 1), ReceiptOutcome("settled", 6, 0)])
    assert store.batch(batch_id).block_hash == BLOCK1

    store.reopen_batch(batch_id, "its block was dropped")

    record = store.batch(batch_id)
    assert (record.state, record.reopened, record.block_number, record.block_hash) == ("submitted", 1, None, None)
    assert record.reason == "its block was dropped" and all(i.outcome is None for i in record.items)
    assert [b.id for b in store.pending_batches()] == [batch_id]
    channel = store.channel(CONSUMER, NODE)
    assert (channel.settled_amount, channel.settled_bytes, channel.settled_receipt_id) == (0, 0, None)
    assert [s.receipt.cumulative_amount for s in store.bundle_receipts([latest1])] == [10, 20, 30]
    assert store.integrity_problems() == []
    with pytest.raises(BatchStateError, match="reopened"):
        store.reopen_batch(batch_id, "again")
    # Re-included in another block: confirmed again from that block's receipt.
    store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 30, 1), ReceiptOutcome("settled", 6, 0)],
                         tx_hash=TX1, block_number=13, block_hash=BLOCK2)
    assert store.batch(batch_id).block_hash == BLOCK2
    assert store.channel(CONSUMER, NODE).settled_amount == 30
    assert [b.id for b in store.confirmed_batches(above_block=12)] == [batch_id]
    assert store.confirmed_batches(above_block=13) == []
    assert store.integrity_problems() == []


def test_payment_beyond_the_ledger_is_refused_until_the_lost_batch_is_reopened(store, signer, two_channels):
    from nodeclient.receipts.store_batches import LedgerAheadError

    first = _confirmed_batch(store, [two_channels[0]], [ReceiptOutcome("settled", 30, 0)])
    latest = _accept(store, signer, 40)
    second = store.begin_batch([latest])
    store.mark_submitted(second, TX2, 8)
    before = db_snapshot(store.path)
    # The chain lost the first batch, so the second one paid the whole cumulative 40.
    with pytest.raises(LedgerAheadError, match="reports paid 40, more than the 10 it could owe"):
        store.mark_confirmed(second, [ReceiptOutcome("settled", 40, 0)], tx_hash=TX2, block_number=13)
    assert db_snapshot(store.path) == before

    store.reopen_batch(first, "lost")
    store.mark_confirmed(second, [ReceiptOutcome("settled", 40, 0)], tx_hash=TX2, block_number=13)
    store.mark_failed(first, "its nonce was mined by the second batch")

    channel = store.channel(CONSUMER, NODE)
    assert channel.settled_amount == 40 and channel.settled_receipt_id == latest.id
    assert store.pending_batches() == [] and store.integrity_problems() == []


def test_sql_trigger_allows_confirmed_to_submitted_only_as_a_counted_reopen(store, two_channels):
    batch_id = _confirmed_batch(store, [two_channels[0]], [ReceiptOutcome("settled", 30, 0)])
    conn = sqlite3.connect(str(store.path))
    with pytest.raises(sqlite3.IntegrityError, match="illegal settlement batch state"):
        conn.execute("UPDATE batches SET state = 'submitted' WHERE id = ?", (batch_id,))
    with pytest.raises(sqlite3.IntegrityError, match="illegal settlement batch state"):
        conn.execute("UPDATE batches SET state = 'pending', reopened = reopened + 1 WHERE id = ?", (batch_id,))
    conn.close()


def test_version_1_store_is_migrated_with_its_open_batch_intact(tmp_path, monkeypatch, signer):
    from nodeclient.receipts import store_schema

    path = tmp_path / "v1.db"
    monkeypatch.setattr(store_schema, "_MIGRATIONS", store_schema._MIGRATIONS[:1])
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", 1)
    with ReceiptStore(path) as old:
        latest = _accept(old, signer, 30)
        batch_id = old.begin_batch([latest])
        old.mark_submitted(batch_id, TX1, 3)
    monkeypatch.undo()

    with ReceiptStore(path) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        record = store.batch(batch_id)
        assert (record.state, record.nonce, record.tx_hashes, record.reopened) == ("submitted", 3, (TX1,), 0)
        store.mark_confirmed(batch_id, [ReceiptOutcome("settled", 30, 0)], tx_hash=TX1, block_number=9, block_hash=BLOCK1)
        store.reopen_batch(batch_id, "lost")
        assert store.channel(CONSUMER, NODE).settled_amount == 0
        assert store.integrity_problems() == []
