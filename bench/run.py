"""``make bench``: Kuota's gas and speed, measured in one run, beside the peer systems' figures.

    .venv/bin/python bench/run.py                   # everything (< 10 min on 2 cores)
    .venv/bin/python bench/run.py --quick           # smaller batches and samples
    .venv/bin/python bench/run.py --only gas        # the gas part alone (contracts work)
    .venv/bin/python bench/run.py --only offchain   # signing, verification, store, audit, relay
    .venv/bin/python bench/run.py --update-docs     # also rewrite the measured section of docs/GAS.md

Gas: a private Anvil, a real deployment, real transactions; every figure is ``gasUsed`` from a
receipt (`bench.gas`). Off-chain: each rate beside a raw baseline measured in the same run, as a
ratio — ``bench/receipts_bench.py``, ``bench/audit_bench.py`` and ``bench/relay_bench.py`` (each
``run(...) -> dict``),
plus the two baselines they do not measure (raw coincurve signing, raw SQLite inserts with
``synchronous=FULL``). A part that is missing or fails is shown as "not available: <reason>" and the
run goes on; the exit status is non-zero only when the gas part fails.

Writes ``bench/results.json`` (stable keys) and prints the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import floors, gas

__all__ = [
    "GAS_ROWS",
    "SCHEMA",
    "collect_environment",
    "floors_table",
    "gas_table",
    "main",
    "markdown_report",
    "offchain_table",
    "render_table",
    "run_offchain",
]

SCHEMA = "kuota-bench/1"
RESULTS_PATH = ROOT / "bench" / "results.json"
DOCS_PATH = ROOT / "docs" / "GAS.md"
DOCS_BEGIN = "<!-- bench:measured:begin (written by `bench/run.py --update-docs`; do not edit by hand) -->"
DOCS_END = "<!-- bench:measured:end -->"

#: The gas table: (figure key, anchors it is compared with, what is compared: "unit" = per receipt /
#: per epoch figure, "total" = whole transaction). Cold rows sit right under their warm row.
GAS_ROWS: list[tuple[str, list[str], str]] = [
    ("settle.warm", ["mysterium.settlePromise", "orchid.claim", "tap.redeem", "horizon.collect"], "total"),
    ("settle.cold_channel", ["mysterium.settlePromise"], "total"),
    ("settle.cold_node", [], "total"),
    ("settle.cold_epoch", [], "total"),
    ("settleMany.1.warm", ["mysterium.settlePromise"], "unit"),
    ("settleMany.1.cold", [], "unit"),
    ("settleManyPacked.1.warm", ["mysterium.settlePromise"], "unit"),
    ("settleMany.10.warm", ["orchid.claim10"], "unit"),
    ("settleMany.10.cold", ["orchid.claim10"], "unit"),
    ("settleManyPacked.10.warm", ["orchid.claim10"], "unit"),
    ("settleMany.100.warm", ["orchid.claim10"], "unit"),
    ("settleMany.100.cold", ["orchid.claim10"], "unit"),
    ("settleManyPacked.100.warm", ["orchid.claim10"], "unit"),
    ("settleMany.300.warm", ["orchid.claim10"], "unit"),
    ("settleMany.300.cold", ["orchid.claim10"], "unit"),
    ("settleManyPacked.300.warm", ["orchid.claim10"], "unit"),
    ("settleLanes.10.warm", ["orchid.claim10"], "unit"),
    ("settleLanes.100.warm", ["orchid.claim10"], "unit"),
    ("settleLanes.1000.warm", ["orchid.claim10"], "unit"),
    ("lanes.allocateMany", [], "total"),
    ("claim.1.warm", ["1inch.repeat", "synthetix.getReward", "uniswap.merkle"], "total"),
    ("claim.1.warm_finalising", ["1inch.repeat"], "total"),
    ("claim.1.cold", ["1inch.first"], "total"),
    ("claim.10.warm", ["1inch.repeat"], "total"),
    ("claim.10.cold", ["1inch.first"], "total"),
    ("finalizeEpochs", [], "total"),
    ("stake.first", [], "total"),
    ("stake.topup", [], "total"),
    ("register.first", [], "total"),
    ("register.next", [], "total"),
    ("register_incl_stake", [], "total"),
    ("deposit.first", [], "total"),
    ("deposit.topup", [], "total"),
    ("slash", [], "total"),
    ("unbond.request", [], "total"),
    ("unbond.withdraw", [], "total"),
    ("escrow.thaw", [], "total"),
    ("escrow.withdraw", [], "total"),
    ("earnings.withdraw.first", [], "total"),
    ("earnings.withdraw.warm", [], "total"),
    ("fees.sweep", [], "total"),
]


# --- environment -----------------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _compiler() -> dict[str, Any]:
    """The compiler settings of the build the gas figures ran (Brownie's build artifact)."""
    path = ROOT / "build" / "contracts" / "ReceiptSettlement.json"
    try:
        compiler = json.loads(path.read_text()).get("compiler", {})
    except (OSError, json.JSONDecodeError):
        return {"solc": "unknown (no build artifact)"}
    optimizer = compiler.get("optimizer", {})
    return {
        "solc": compiler.get("version", "unknown"),
        "optimizer": bool(optimizer.get("enabled")),
        "optimizerRuns": optimizer.get("runs"),
        "evmVersion": compiler.get("evm_version"),
    }


def collect_environment() -> dict[str, Any]:
    """Machine, toolchain and source revision, recorded with every result."""
    dirty = _git("status", "--porcelain", "--", "contracts")
    return {
        "cpuCount": os.cpu_count(),
        "cpuModel": _cpu_model(),
        "loadAverageAtStart": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        **_compiler(),
        "gitCommit": _git("rev-parse", "HEAD"),
        "contractsUncommittedChanges": bool(dirty),
        "packages": _versions("eth-brownie", "web3", "eth-account", "coincurve"),
    }


# --- off-chain -------------------------------------------------------------------------------------


def _paired(
    kuota: Callable[[int], Any], baseline: Callable[[int], Any], count: int, rounds: int
) -> dict[str, float]:
    """Rates of ``kuota(i)`` and ``baseline(i)``, measured in alternating blocks.

    The machine is shared and its load drifts by the second: interleaving blocks of the two puts both
    under the same conditions, so their ratio is meaningful even when the absolute rates move.
    """
    block = max(1, count // rounds)
    spent = {"kuota": 0.0, "baseline": 0.0}
    done = 0
    for r in range(rounds):
        lo, hi = r * block, (r + 1) * block if r < rounds - 1 else count
        for name, fn in (
            (("kuota", kuota), ("baseline", baseline))
            if r % 2 == 0
            else (("baseline", baseline), ("kuota", kuota))
        ):
            start = time.perf_counter()
            for i in range(lo, hi):
                fn(i)
            spent[name] += time.perf_counter() - start
        done += hi - lo
    return {
        "kuota_per_s": round(done / spent["kuota"], 1),
        "baseline_per_s": round(done / spent["baseline"], 1),
        "ratio": round(spent["baseline"] / spent["kuota"], 3),
        "samples": done,
    }


def measure_paired(quick: bool) -> dict[str, Any]:
    """The off-chain target rates, each paired with its raw baseline in alternating blocks.

    - ``sign_client``: ``nodeclient.receipts.signing.sign_receipt`` (EIP-712 digest + libsecp256k1,
      the signer consumers run) vs ``PrivateKey.sign_recoverable`` of a precomputed digest.
    - ``sign_eth_account``: eth-account ``sign_message(encode_typed_data(...))`` vs the same raw sign.
    - ``verify_client``: ``verify_receipt`` (digest, coincurve recovery with low-s/v checks, signer
      compare) vs raw coincurve recovery of a precomputed digest (+ address).
    - ``verify_eth_account``: eth-account ``recover_message(encode_typed_data(...))`` + compare vs raw.
    - ``store_accept``: ``ReceiptStore.accept`` (verify + one durable transaction, WAL,
      ``synchronous=FULL``) vs a raw SQLite insert of a receipt-sized row, one transaction each, same
      pragmas, same directory.
    """
    from coincurve import PrivateKey, PublicKey
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from nodeclient.receipts import Receipt, ReceiptStore
    from nodeclient.receipts.crypto import keccak256
    from nodeclient.receipts.signing import (
        receipt_digest,
        receipt_domain,
        sign_receipt,
        typed_data,
        verify_receipt,
    )

    key_bytes = keccak256(b"kuota-bench:paired-consumer")
    key = PrivateKey(key_bytes)
    consumer = Account.from_key(key_bytes).address
    node = Account.from_key(keccak256(b"kuota-bench:paired-node")).address
    domain = receipt_domain(31337, "0x" + "5e" * 20)
    n_sign = 1_000 if quick else 4_000
    n_slow = 200 if quick else 600  # eth-account is ~10x slower
    n_store = 100 if quick else 300
    receipts = [
        Receipt(
            consumer=consumer,
            node=node,
            session_id="0x" + "ab" * 32,
            cumulative_bytes=(i + 1) * 1024 * 1024,
            cumulative_amount=(i + 1) * 1_000,
            latency_ms=40,
            issued_at=1_750_000_000 + i,
        )
        for i in range(n_sign)
    ]
    digests = [receipt_digest(r, domain) for r in receipts]
    signed = [sign_receipt(r, key, domain) for r in receipts]
    sigs = [s.signature_bytes for s in signed]
    messages = [typed_data(r, domain) for r in receipts[:n_slow]]
    out: dict[str, Any] = {}
    out["sign_client"] = _paired(
        lambda i: sign_receipt(receipts[i], key, domain),
        lambda i: key.sign_recoverable(digests[i], hasher=None),
        n_sign,
        8,
    )

    def raw_recover(i: int) -> bytes:
        public = PublicKey.from_signature_and_message(
            sigs[i][:64] + bytes((sigs[i][64] - 27,)), digests[i], hasher=None
        )
        return keccak256(public.format(compressed=False)[1:])[12:]

    out["sign_eth_account"] = _paired(
        lambda i: Account.sign_message(encode_typed_data(full_message=messages[i]), key_bytes),
        lambda i: key.sign_recoverable(digests[i], hasher=None),
        n_slow,
        4,
    )
    out["verify_client"] = _paired(lambda i: verify_receipt(signed[i], domain), raw_recover, n_sign, 8)

    def eth_verify(i: int) -> None:
        if (
            Account.recover_message(encode_typed_data(full_message=messages[i]), signature=sigs[i])
            != consumer
        ):
            raise RuntimeError("eth-account recovered another signer: the benchmark is invalid")

    out["verify_eth_account"] = _paired(eth_verify, raw_recover, n_slow, 4)
    with tempfile.TemporaryDirectory(prefix="kuota-bench-store-") as tmp:
        store = ReceiptStore(Path(tmp) / "store.db")
        conn = sqlite3.connect(str(Path(tmp) / "raw.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE r (id INTEGER PRIMARY KEY, digest TEXT UNIQUE, consumer TEXT, node TEXT, session TEXT, "
                "nbytes TEXT, amount TEXT, latency INTEGER, issued TEXT, signature TEXT, accepted REAL)"
            )
            sql = (
                "INSERT INTO r (digest, consumer, node, session, nbytes, amount, latency, issued, signature, accepted) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )

            def raw_insert(i: int) -> None:
                r = signed[i]
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    sql,
                    (
                        "0x" + digests[i].hex(),
                        r.consumer,
                        r.node,
                        r.session_id,
                        str(r.cumulative_bytes),
                        str(r.cumulative_amount),
                        r.latency_ms,
                        str(r.issued_at),
                        r.signature,
                        time.time(),
                    ),
                )
                conn.execute("COMMIT")

            out["store_accept"] = _paired(
                lambda i: store.accept(signed[i], expected_domain=domain, expected_node=node),
                raw_insert,
                n_store,
                6,
            )
            if store.count() != n_store or store.integrity_problems():
                raise RuntimeError("the store benchmark left an inconsistent store: the benchmark is invalid")
        finally:
            conn.close()
            store.close()
        out["directory"] = str(Path(tmp).parent)
    return out


def _call_area_bench(
    module: str, quick: bool, quick_kwargs: dict[str, Any], full_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Import ``bench.<module>`` and call its ``run`` with the keyword arguments it accepts."""
    started = time.monotonic()
    try:
        mod = importlib.import_module(f"bench.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{module}":
            return {"status": "not available", "reason": f"bench/{module}.py does not exist yet"}
        return {"status": "not available", "reason": f"import failed: {exc}"}
    except Exception as exc:  # noqa: BLE001 - an optional part: report it, never crash the run
        return {"status": "not available", "reason": f"import failed: {type(exc).__name__}: {exc}"}
    run = getattr(mod, "run", None)
    if not callable(run):
        return {"status": "not available", "reason": f"bench/{module}.py has no run()"}
    wanted = dict(quick_kwargs if quick else full_kwargs)
    accepted = inspect.signature(run).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        kwargs = wanted
    else:
        kwargs = {k: v for k, v in wanted.items() if k in accepted}
    try:
        result = run(**kwargs)
    except BaseException as exc:  # SystemExit included: receipts_bench exits on an invalid run
        if isinstance(exc, KeyboardInterrupt):
            raise
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {
            "status": "not available",
            "reason": f"run() failed: {tail}",
            "seconds": round(time.monotonic() - started, 1),
        }
    if not isinstance(result, dict):
        return {"status": "not available", "reason": f"run() returned {type(result).__name__}, not a dict"}
    return {
        "status": "ok",
        "arguments": kwargs,
        "seconds": round(time.monotonic() - started, 1),
        "figures": result,
    }


def run_offchain(quick: bool, skip: set[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every off-chain measurement, each area's failure isolated."""
    out: dict[str, Any] = {}
    log("off-chain: sign / verify / store, each interleaved with its raw baseline")
    try:
        out["paired"] = {"status": "ok", "figures": measure_paired(quick)}
    except Exception as exc:  # noqa: BLE001 - reported as not available; the run goes on
        out["paired"] = {"status": "not available", "reason": f"{type(exc).__name__}: {exc}"}
    plan: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("receipts", "receipts_bench", {"quick": True}, {"quick": False}),
        # The audit target is a bundle of >= 100,000 receipts; --quick replays 20,000.
        ("audit", "audit_bench", {"n_receipts": 20_000}, {"n_receipts": 100_000}),
        ("relay", "relay_bench", {"size_mib": 64, "repeats": 1}, {"size_mib": 256, "repeats": 2}),
    ]
    for name, module, quick_kwargs, full_kwargs in plan:
        if name in skip:
            out[name] = {"status": "not available", "reason": "skipped (--skip)"}
            continue
        log(f"off-chain: {name} (bench/{module}.py)")
        out[name] = _call_area_bench(module, quick, quick_kwargs, full_kwargs)
        if out[name]["status"] != "ok":
            log(f"  not available: {out[name]['reason']}")
    return out


# --- tables ----------------------------------------------------------------------------------------


def gas_table(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the gas table (one per figure and anchor), as dicts with stable keys."""
    figures = section.get("figures", {})
    rows: list[dict[str, Any]] = []
    sizes = section.get("settleManySizes", list(gas.SETTLE_MANY_SIZES))
    for key, anchors, compare in GAS_ROWS:
        match = re.match(r"settleMany(?:Packed)?\.(\d+)\.", key)
        if match and int(match.group(1)) not in sizes:
            continue
        figure = figures.get(key)
        target = gas.TARGETS.get(key)
        base: dict[str, Any] = {"key": key, "operation": figure["label"] if figure else key}
        if figure is None:
            reason = section.get("error") or "not measured"
            rows.append(
                {
                    **base,
                    "kuota": None,
                    "kuotaText": f"not available: {reason}",
                    "anchor": None,
                    "anchorGas": None,
                    "ratio": None,
                    "target": target[0] if target else None,
                    "met": None,
                }
            )
            continue
        value = figure["perUnit"] if figure["count"] > 1 and compare == "unit" else figure["gasUsed"]
        if figure["count"] > 1:
            text = f"{figure['gasUsed']:,} ({figure['perUnit']:,}/{figure['unit']})"
        else:
            text = f"{figure['gasUsed']:,}"
        measured_for_target = None
        if target is not None:
            per = target[1]
            measured_for_target = figure["perUnit"] if per != "tx" else figure["gasUsed"]
        met = None if target is None else measured_for_target <= target[0]
        for index, anchor_key in enumerate(anchors or [None]):
            anchor = gas.ANCHORS.get(anchor_key) if anchor_key else None
            rows.append(
                {
                    **base,
                    "continuation": index > 0,
                    "kuota": value,
                    "kuotaText": text,
                    "compared": "per " + figure["unit"]
                    if compare == "unit" and figure["count"] > 1
                    else "transaction",
                    "anchor": anchor["system"] if anchor else None,
                    "anchorGas": anchor["gas"] if anchor else None,
                    "ratio": round(value / anchor["gas"], 3) if anchor else None,
                    "target": target[0] if target and index == 0 else None,
                    "targetPer": target[1] if target and index == 0 else None,
                    "met": met if index == 0 else None,
                    "conditions": figure["conditions"],
                }
            )
    return rows


def _ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def render_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A plain aligned text table (also valid as a Markdown table body)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def gas_text_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Cells of the printed gas table: operation | Kuota gas | anchor | ratio | target | met?"""
    out = []
    for row in rows:
        cont = row.get("continuation")
        anchor = f"{row['anchor']}, {row['anchorGas']:,}" if row.get("anchor") else "—"
        target = "—"
        if row.get("target") is not None:
            target = f"≤ {row['target']:,}" + ("/receipt" if row.get("targetPer") == "receipt" else "")
        met = "—" if row.get("met") is None else ("yes" if row["met"] else "NO")
        out.append(
            [
                "" if cont else row["operation"],
                "〃" if cont else row["kuotaText"],
                anchor,
                _ratio_text(row.get("ratio")),
                "" if cont else target,
                "" if cont else met,
            ]
        )
    return out


GAS_HEADERS = ["operation", "Kuota gas", "anchor (system, figure)", "ratio", "target", "met?"]
FLOOR_HEADERS = [
    "model (probe)",
    "floor gas",
    "Kuota today (same run)",
    "issue-7 target",
    "floor above target?",
]


def floors_table(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the floors table: each probe's measured floor beside its gas target (stable keys).

    ``floor`` is per receipt for batches (what the target is per), per transaction otherwise;
    ``aboveTarget`` is True when the floor alone exceeds the target (no implementation of that model
    can meet it), None when the row has no target or was not measured.
    """
    part = section.get("floors") or {}
    figures = part.get("figures") or {}
    real = section.get("figures") or {}
    rows: list[dict[str, Any]] = []
    for key, model, real_key, target_key in floors.FLOOR_ROWS:
        figure = figures.get(key)
        target = gas.TARGETS.get(target_key) if target_key else None
        kuota = real.get(real_key)
        row: dict[str, Any] = {
            "key": key,
            "model": model,
            "target": target[0] if target else None,
            "targetPer": target[1] if target else None,
            "targetKey": target_key,
            "kuotaKey": real_key,
            "kuota": (kuota["perUnit"] if kuota["count"] > 1 else kuota["gasUsed"]) if kuota else None,
            "kuotaPer": kuota["unit"] if kuota and kuota["count"] > 1 else None,
        }
        if figure is None:
            reason = part.get("error") or part.get("reason") or ("not measured" if part else "floors not run")
            rows.append({**row, "floor": None, "floorText": f"not available: {reason}", "aboveTarget": None})
            continue
        per_unit = figure["count"] > 1
        value = figure["perUnit"] if per_unit else figure["gasUsed"]
        text = (
            f"{figure['gasUsed']:,} ({figure['perUnit']:,}/{figure['unit']})"
            if per_unit
            else f"{figure['gasUsed']:,}"
        )
        rows.append(
            {
                **row,
                "floor": value,
                "floorText": text,
                "aboveTarget": None if target is None else value > target[0],
                "conditions": figure["conditions"],
            }
        )
    return rows


def floors_text_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Cells of the printed floors table."""
    out = []
    for row in rows:
        target = "—"
        if row.get("target") is not None:
            target = f"≤ {row['target']:,}" + ("/receipt" if row.get("targetPer") == "receipt" else "")
        kuota = "—" if row.get("kuota") is None else f"{row['kuota']:,}"
        if row.get("kuota") is not None and row.get("kuotaPer"):
            kuota += f"/{row['kuotaPer']}"
            # Batch floors: ABI-calldata probes beside settleMany, packed probes beside settleManyPacked.
            kuota += f" ({str(row.get('kuotaKey') or '').split('.')[0]})"
        above = "—" if row.get("aboveTarget") is None else ("YES" if row["aboveTarget"] else "no")
        out.append([row["model"], row["floorText"], kuota, target, above])
    return out


OFF_HEADERS = ["measurement", "Kuota", "baseline (same run)", "ratio"]


def _get(section: dict[str, Any], name: str) -> dict[str, Any] | None:
    part = section.get(name) or {}
    return part.get("figures") if part.get("status") == "ok" else None


def offchain_table(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the off-chain table: each rate beside its raw baseline from the same run."""
    rows: list[dict[str, Any]] = []
    paired, receipts, audit, relay = (_get(section, n) for n in ("paired", "receipts", "audit", "relay"))

    def add(
        measure: str,
        value: float | None,
        unit: str,
        baseline: str,
        base_value: float | None,
        reason: str | None = None,
        source: str = "",
    ) -> None:
        ratio = round(value / base_value, 3) if value and base_value else None
        rows.append(
            {
                "measurement": measure,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baselineValue": base_value,
                "ratio": ratio,
                "reason": reason,
                "source": source,
            }
        )

    def why(name: str) -> str:
        return str((section.get(name) or {}).get("reason", "not measured"))

    pairs = [
        ("sign_client", "receipts signed/s, client sign_receipt (coincurve)", "raw coincurve sign"),
        ("sign_eth_account", "receipts signed/s, eth-account sign_message", "raw coincurve sign"),
        ("verify_client", "receipts verified/s, client verify_receipt (coincurve)", "raw coincurve recovery"),
        ("verify_eth_account", "receipts verified/s, eth-account recover_message", "raw coincurve recovery"),
        (
            "store_accept",
            "store inserts/s, ReceiptStore.accept (FULL, 1/tx)",
            "raw SQLite insert (WAL, FULL, 1/tx)",
        ),
    ]
    if paired:
        for key, label, baseline in pairs:
            p = paired[key]
            add(label, p["kuota_per_s"], "/s", baseline, p["baseline_per_s"], source="paired")
    else:
        add("receipts sign / verify / store", None, "", "—", None, why("paired"))
    if receipts:
        raw = receipts.get("recover_coincurve_raw_per_s")
        add(
            "verify_many (JSON parse+digest+recover), 1 process",
            receipts.get("verify_many_1proc_per_s"),
            "/s",
            "raw coincurve recovery",
            raw,
            source="receipts_bench",
        )
        add(
            f"verify_many, {receipts.get('verify_many_processes', '?')} processes",
            receipts.get("verify_many_parallel_per_s"),
            "/s",
            "raw coincurve recovery (1 core)",
            raw,
            source="receipts_bench",
        )
        add(
            "store inserts/s, accept_many (100/tx)",
            receipts.get("store_accept_many100_per_s"),
            "/s",
            "ReceiptStore.accept (1/tx)",
            receipts.get("store_accept_per_s"),
            source="receipts_bench",
        )
    else:
        add("verify_many / accept_many (receipts bench)", None, "", "—", None, why("receipts"))
    if audit:
        value = _first(audit, ("replay_per_s", "receipts_replayed_per_s", "replayed_per_s"))
        baseline = _first(
            audit, ("raw_recover_per_s", "raw_coincurve_recover_per_s", "recover_coincurve_raw_per_s")
        )
        if value is None:
            keys = ", ".join(sorted(audit)[:10])
            add("audit replay/s", None, "", "—", None, f"audit_bench returned no replay rate (keys: {keys})")
        else:
            n = audit.get("receipts", "?")
            n_text = f"{n:,}" if isinstance(n, int) else str(n)
            add(
                f"audit replay/s, bundle of {n_text}, {audit.get('jobs', '?')} processes",
                value,
                "/s",
                "raw coincurve recovery (1 core)",
                baseline,
                source="audit_bench",
            )
            serial = _first(audit, ("replay_serial_per_s",))
            if serial is not None:
                add(
                    "audit replay/s, 1 process",
                    serial,
                    "/s",
                    "raw coincurve recovery (1 core)",
                    baseline,
                    source="audit_bench",
                )
    else:
        add("audit replay/s", None, "", "—", None, why("audit"))
    if relay:
        add(
            "relay throughput, metered",
            relay.get("metered_mib_s"),
            "MiB/s",
            "unmetered asyncio relay",
            relay.get("unmetered_mib_s"),
            source="relay_bench",
        )
        if relay.get("metered_plaintext_mib_s") is not None:
            # The product always encrypts the link; the bench's plaintext run is the baseline the
            # encryption cost is judged against (goal: at least 85 %).
            add(
                f"relay throughput, encrypted link ({relay.get('link_protocol', '?')})",
                relay.get("metered_mib_s"),
                "MiB/s",
                "the same metered relay, plaintext link",
                relay.get("metered_plaintext_mib_s"),
                source="relay_bench",
            )
    else:
        add("relay throughput metered/unmetered", None, "", "—", None, why("relay"))
    return rows


def _first(figures: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = figures.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def offchain_text_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for row in rows:
        if row["value"] is None:
            out.append([row["measurement"], f"not available: {row['reason']}", "—", "—"])
            continue
        baseline = (
            f"{row['baseline']}: {_num(row['baselineValue'], row['unit'])}" if row["baselineValue"] else "—"
        )
        out.append([row["measurement"], _num(row["value"], row["unit"]), baseline, _ratio_text(row["ratio"])])
    return out


def breakdown_summary(section: dict[str, Any]) -> list[str]:
    """Short text: where the gas of the traced transactions goes."""
    lines = []
    for key, b in (section.get("breakdowns") or {}).items():
        if "error" in b:
            lines.append(f"{key}: trace not available: {b['error']}")
            continue
        count = (section.get("figures", {}).get(key) or {}).get("count", 1) or 1
        per = f" (per receipt / {count})" if count > 1 else ""
        lines.append(
            f"{key}: {b['gasUsed']:,} gas{per} = 21,000 base + {b['calldataGas']:,} calldata "
            f"({b['calldataBytes']:,} B) + {b['executionGas']:,} execution - {b['refund']:,} refund"
        )
        for name, v in list(b["classes"].items())[:8]:
            lines.append(
                f"    {name:<46} {v['gas']:>10,} ({v['gas'] / count:>8,.0f}{'/receipt' if count > 1 else ''})  x{v['count']}"
            )
    return lines


# --- docs -----------------------------------------------------------------------------------------


def _md_breakdown(key: str, b: dict[str, Any], count: int) -> list[str]:
    per = count > 1
    lines = [
        f"**{key}** — {b['gasUsed']:,} gas = 21,000 base + {b['calldataGas']:,} calldata ({b['calldataBytes']:,} bytes) "
        f"+ {b['executionGas']:,} execution − {b['refund']:,} refund"
        + (f"; per receipt: {b['gasUsed'] / count:,.0f}" if per else ""),
        "",
        "| opcode class | gas | count" + (" | per receipt |" if per else " |"),
        "|---|---:|---:|" + ("---:|" if per else ""),
    ]
    for name, v in b["classes"].items():
        lines.append(
            f"| {name} | {v['gas']:,} | {v['count']:,} |" + (f" {v['gas'] / count:,.0f} |" if per else "")
        )
    lines += ["", "| call frame | calls | gas (own opcodes) | top classes |", "|---|---:|---:|---|"]
    for name, v in b["frames"].items():
        top = "; ".join(f"{c} {x['gas']:,} ×{x['count']}" for c, x in list(v["classes"].items())[:4])
        lines.append(f"| {name} | {v['calls']} | {v['gas']:,} | {top} |")
    for name, v in (b.get("precompiles") or {}).items():
        lines.append(f"| {name} (precompile) | {v['calls']} | {v['gas']:,} | |")
    return [*lines, ""]


def markdown_report(results: dict[str, Any]) -> str:
    """The measured section of docs/GAS.md, generated from a results dict."""
    env = results["environment"]
    gas_section = results.get("gas") or {}
    when = results["generatedAt"]
    argv = results["options"].get("argv")
    chain_env = gas_section.get("environment", {})
    anvil = f"{chain_env.get('anvil', 'anvil ?')} ({chain_env.get('hardFork', '?')} gas schedule)"
    dirty = " (contracts/ had uncommitted changes)" if env.get("contractsUncommittedChanges") else ""
    optimizer = "on" if env.get("optimizer") else "off"
    header = (
        f"Measured by `make bench{' ' + argv if argv else ''}` on {when} — {env['cpuCount']} × {env['cpuModel']}, "
        f"load average {env['loadAverageAtStart']} at start (a shared machine), Python {env['python']}, "
        f"solc {env.get('solc')} (optimizer {optimizer}, {env.get('optimizerRuns')} runs, EVM {env.get('evmVersion')}), "
        f"{anvil}, commit `{env['gitCommit'][:12]}`{dirty}."
    )
    lines = [
        DOCS_BEGIN,
        "",
        header,
        "",
        "### Gas (gasUsed of real transactions; anchors are the peers' published figures)",
        "",
        render_table(GAS_HEADERS, gas_text_rows(results["table"]["gas"]), right={1, 3}),
        "",
        "Conditions of each figure:",
        "",
    ]
    seen = set()
    for row in results["table"]["gas"]:
        if row["key"] in seen or not row.get("conditions"):
            continue
        seen.add(row["key"])
        lines.append(f"- `{row['key']}`: {row['conditions']}")
    floor_rows = results["table"].get("floors") or []
    if floor_rows:
        lines += [
            "",
            "### Floors (probe contracts, measured)",
            "",
            (
                "`contracts/test/GasFloorProbe.sol` does only the irreducible work of each model (EIP-712 "
                "receipt check, the storage the model writes, the events where named), warm, on the same "
                "chain; every figure is the gasUsed of a real transaction. A floor above its target means no "
                "implementation of that model meets the target. Batch floors come twice: with ABI calldata "
                "(beside the real `settleMany`) and packed, 161 bytes a receipt (beside the real "
                "`settleManyPacked`, which takes the same layout)."
            ),
            "",
            render_table(FLOOR_HEADERS, floors_text_rows(floor_rows), right={1, 2}),
            "",
            "Conditions of each floor:",
            "",
        ]
        for row in floor_rows:
            if row.get("conditions"):
                lines.append(f"- `{row['key']}`: {row['conditions']}")
    lines += ["", "### Off-chain (same run; each beside its raw baseline)", ""]
    lines.append(render_table(OFF_HEADERS, offchain_text_rows(results["table"]["offchain"]), right={3}))
    breakdowns = gas_section.get("breakdowns") or {}
    if breakdowns:
        lines += [
            "",
            "### Where the gas goes (debug_traceTransaction, summed by opcode class and call frame)",
            "",
        ]
        for key, b in breakdowns.items():
            if "error" in b:
                lines += [f"**{key}** — trace not available: {b['error']}", ""]
                continue
            count = (gas_section.get("figures", {}).get(key) or {}).get("count", 1) or 1
            lines += _md_breakdown(key, b, count)
    lines += [DOCS_END]
    return "\n".join(lines)


def update_docs(results: dict[str, Any], path: Path = DOCS_PATH) -> bool:
    """Replace the generated block of docs/GAS.md; False if the file or its markers are missing."""
    try:
        text = path.read_text()
    except OSError:
        return False
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        return False
    path.write_text(text[:begin] + markdown_report(results) + text[end + len(DOCS_END) :])
    return True


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kuota gas and speed benchmark (make bench).")
    parser.add_argument("--quick", action="store_true", help="batches up to 100, smaller off-chain samples")
    parser.add_argument("--only", choices=("gas", "offchain"), help="run one part only")
    parser.add_argument("--no-trace", action="store_true", help="skip the debug_traceTransaction breakdowns")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("receipts", "audit", "relay"),
        help="leave out an off-chain area (repeatable)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_PATH, help="results JSON (default bench/results.json)"
    )
    parser.add_argument(
        "--update-docs", action="store_true", help="rewrite the measured block of docs/GAS.md"
    )
    args = parser.parse_args(argv)
    # A SIGTERM (make's timeout, a CI cancel) must unwind through the `finally` that stops the chain.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    raw_argv = " ".join(argv if argv is not None else sys.argv[1:])

    started = time.monotonic()
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "generatedAt": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "options": {
            "quick": args.quick,
            "only": args.only,
            "trace": not args.no_trace,
            "skip": sorted(args.skip),
            "argv": raw_argv,
        },
        "environment": collect_environment(),
        "anchors": gas.ANCHORS,
        "targets": {k: {"max": v[0], "per": v[1]} for k, v in gas.TARGETS.items()},
    }
    gas_failed = False
    if args.only in (None, "gas"):
        print("== gas (private Anvil, real transactions) ==", flush=True)
        results["gas"] = gas.run(
            quick=args.quick, trace=not args.no_trace, log=lambda m: print(m, flush=True), floors=floors.run
        )
        gas_failed = results["gas"]["status"] != "ok"
        if gas_failed:
            print(f"gas part FAILED: {results['gas']['error']}", flush=True)
        floors_part = results["gas"].get("floors")
        if floors_part is not None and floors_part.get("status") != "ok":
            gas_failed = True
            print(f"gas floors FAILED: {floors_part.get('error')}", flush=True)
    if args.only in (None, "offchain"):
        print("== off-chain ==", flush=True)
        results["offchain"] = run_offchain(args.quick, set(args.skip), log=lambda m: print(m, flush=True))
    results["environment"]["loadAverageAtEnd"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.monotonic() - started, 1)
    results["table"] = {
        "gas": gas_table(results["gas"]) if "gas" in results else [],
        "floors": floors_table(results["gas"]) if "gas" in results else [],
        "offchain": offchain_table(results["offchain"]) if "offchain" in results else [],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")

    env = results["environment"]
    print()
    print(
        f"Kuota bench — {results['generatedAt']} — {env['cpuCount']} × {env['cpuModel']}, load {env['loadAverageAtStart']}"
        f" → {env['loadAverageAtEnd']}, solc {env.get('solc')} runs={env.get('optimizerRuns')} evm={env.get('evmVersion')},"
        f" commit {env['gitCommit'][:12]}{' (+uncommitted contracts)' if env.get('contractsUncommittedChanges') else ''}"
    )
    if "gas" in results:
        print()
        chain_env = results["gas"].get("environment", {})
        print(
            f"Gas: whole-transaction gasUsed from receipts (incl. 21,000 base), {chain_env.get('anvil', 'anvil')}, "
            f"{chain_env.get('hardFork', '?')} gas schedule; anchors = peers' published figures;"
        )
        print("ratio = Kuota / anchor (per receipt for batches); lower is better.")
        print(render_table(GAS_HEADERS, gas_text_rows(results["table"]["gas"]), right={1, 3}))
        summary = breakdown_summary(results["gas"])
        if summary:
            print()
            print("Where the gas goes (debug_traceTransaction):")
            print("\n".join(summary))
        for note in results["gas"].get("notes", []):
            print(f"note: {note}")
        if results["table"]["floors"]:
            print()
            print(
                "Floors (probe contracts, measured): contracts/test/GasFloorProbe.sol does only the "
                "irreducible work of each model, warm, on the same chain; per receipt for batches."
            )
            print(render_table(FLOOR_HEADERS, floors_text_rows(results["table"]["floors"]), right={1, 2}))
            for note in (results["gas"].get("floors") or {}).get("notes", []):
                print(f"note: {note}")
    if "offchain" in results:
        print()
        print("Off-chain: measured in this run, each beside its raw baseline (ratio = Kuota / baseline).")
        print(render_table(OFF_HEADERS, offchain_text_rows(results["table"]["offchain"]), right={3}))
    print(
        f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
        f" in {results['seconds']:.0f} s"
    )
    if args.update_docs:
        if update_docs(results):
            print(f"updated the measured section of {DOCS_PATH.relative_to(ROOT)}")
        else:
            print(f"did not update {DOCS_PATH}: file or markers missing", file=sys.stderr)
    return 1 if gas_failed else 0


if __name__ == "__main__":
    sys.exit(main())
