"""Gas of one settleMany / settle / claim, attributed to contract source lines (a developer's tool).

`bench/gas.py` says *which kind* of opcode the gas goes to; this says *which line of Solidity* it
comes from, so "other opcodes" (stack, jumps, ABI decoding) can be traced to its cause. It replays
a real transaction with ``debug_traceTransaction`` on a private ``--steps-tracing`` Anvil and maps
each step's program counter through Brownie's ``pcMap`` (build/contracts/<Name>.json) to the source
range it was compiled from; the gas of a CALL step is the call's own overhead, as in `trace_breakdown`.

    .venv/bin/python bench/profile_lines.py --batch 10 --top 40     # a warm settleMany(10)
    .venv/bin/python bench/profile_lines.py --scenario settle.warm   # any figure of bench/gas.py
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gas import GasBench, _int, _rpc, local_system


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


class _SourceMap:
    """pc → (file, first line, text of that line) for each deployed contract, by address."""

    def __init__(self, system: object) -> None:
        self.by_address: dict[str, tuple[str, dict[str, dict]]] = {}
        self.sources: dict[str, str] = {}
        for attr in ("settlement", "escrow", "rewards", "registry", "token"):
            contract = getattr(system, attr, None)
            if contract is None:
                continue
            name = contract._name
            build = json.loads((ROOT / "build" / "contracts" / f"{name}.json").read_text())
            self.by_address[contract.address.lower()] = (name, build)

    def locate(self, address: str, pc: int) -> str:
        entry = self.by_address.get(address.lower())
        if entry is None:
            return f"{address}:pc{pc}"
        name, build = entry
        info = build["pcMap"].get(str(pc))
        if not info or "offset" not in info or info.get("path") is None:
            return f"{name}: (no source)"
        path = build["allSourcePaths"][info["path"]]
        if path not in self.sources:
            self.sources[path] = (ROOT / path).read_text()
        source = self.sources[path]
        start, end = info["offset"]
        if end - start > 400:  # a whole function or contract: the dispatcher and its glue
            return f"{Path(path).name}: <{info.get('fn') or 'dispatch'}>"
        line = _line_of(source, start)
        text = source.splitlines()[line - 1].strip()
        return f"{Path(path).name}:{line}: {text[:90]}"


def profile(rpc_url: str, tx_hash: str, smap: _SourceMap, to: str) -> dict[str, int]:
    trace = _rpc(
        rpc_url,
        "debug_traceTransaction",
        [tx_hash, {"disableStack": False, "disableMemory": True, "disableStorage": True}],
        timeout=600,
    )
    steps = trace["structLogs"]
    costs: dict[str, int] = defaultdict(int)
    addresses = [to]
    opened: list[int] = []
    for i, step in enumerate(steps):
        depth = int(step["depth"])
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        nxt_depth = int(nxt["depth"]) if nxt is not None else depth - 1
        where = smap.locate(addresses[-1], int(step["pc"]))
        if nxt_depth > depth:
            opened.append(i)
            stack = step.get("stack") or []
            target = stack[-2] if len(stack) >= 2 else "0x0"
            addresses.append("0x" + hex(int(target, 16))[2:].rjust(40, "0"))
            continue
        cost = _int(step["gas"]) - _int(nxt["gas"]) if nxt_depth == depth else _int(step.get("gasCost", 0))
        costs[where] += cost
        if nxt is not None and nxt_depth < depth and opened:
            addresses.pop()
            c = opened.pop()
            child_given = _int(steps[c + 1]["gas"])
            child_left = _int(step["gas"]) - _int(step.get("gasCost", 0))
            own = _int(steps[c]["gas"]) - _int(nxt["gas"]) - (child_given - child_left)
            costs[smap.locate(addresses[-1], int(steps[c]["pc"])) + f"  [{steps[c]['op']}]"] += own
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10, help="receipts in the warm settleMany (default 10)")
    parser.add_argument("--top", type=int, default=45, help="lines to print")
    parser.add_argument(
        "--packed", action="store_true", help="profile settleManyPacked instead of settleMany"
    )
    parser.add_argument(
        "--scenario", help="profile this figure of bench/gas.py instead (settle.warm, claim.1.warm, ...)"
    )
    args = parser.parse_args()
    with local_system(lambda m: print(m, file=sys.stderr), steps_tracing=True) as ctx:
        bench = GasBench(ctx, sizes=(args.batch,), trace=False, log=lambda m: print(m, file=sys.stderr))
        bench.setup()
        smap = _SourceMap(ctx.system)
        if args.scenario:
            bench.settle_single()
            bench.claims()
            figure = bench.figures[args.scenario]
            tx_hash, count = figure.tx_hashes[-1], figure.count
            to = (
                ctx.system.rewards.address
                if args.scenario.startswith("claim")
                else ctx.system.settlement.address
            )
            title = f"{args.scenario}: gasUsed {figure.gas_used:,}"
        else:
            node = bench._address_of_key(bench.nodes[f"M{args.batch}"][0])
            indices = list(range(args.batch))
            bench._settle_many("profile.prime", indices, node)
            send = bench._settle_many_packed if args.packed else bench._settle_many
            tx = send("profile.warm", indices, node)
            tx_hash, count, to = tx.txid, args.batch, ctx.system.settlement.address
            title = f"{'settleManyPacked' if args.packed else 'settleMany'}({args.batch}) warm: gasUsed {tx.gas_used:,}"
        costs = profile(ctx.rpc_url, tx_hash, smap, to)
        total = sum(costs.values())
        print(f"{title}; execution {total:,} ({total / count:,.0f} per unit)")
        for where, gas in sorted(costs.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"{gas:>9,} {gas / count:>8,.0f}/u  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
