"""Export the ABIs the client ships: ``build/contracts/<Name>.json`` → ``nodeclient/abi/<Name>.json``.

Run after ``brownie compile``: ``python scripts/export_abis.py`` (``make abi`` does both). Writes the
six Kuota contracts, ``PaymentToken`` (the ABI of OpenZeppelin's ``IERC20Metadata``: any ERC20 the
escrow is deployed with) and ``MockUSD`` (the local faucet token). Each file is the ABI list only, in
canonical form (sorted keys, two-space indent) so that re-running on an unchanged build changes no byte.
``--check`` exits 1 if a shipped ABI differs from the build, for CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["EXPORTS", "export_abis", "main"]

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "contracts"
ABI_DIR = ROOT / "nodeclient" / "abi"

#: Shipped name → Brownie build artifact name.
EXPORTS: dict[str, str] = {
    "KuotaToken": "KuotaToken",
    "NodeRegistry": "NodeRegistry",
    "Staking": "Staking",
    "PaymentEscrow": "PaymentEscrow",
    "ReceiptSettlement": "ReceiptSettlement",
    "RewardPool": "RewardPool",
    "PaymentToken": "IERC20Metadata",
    "MockUSD": "MockUSD",
    "KuotaGovernor": "KuotaGovernor",
    "KuotaTimelock": "KuotaTimelock",
    "ReceiptSettlementV2": "ReceiptSettlementV2",
    "LaneSettlement": "LaneSettlement",
}


def _render(abi: list[dict[str, Any]]) -> str:
    return json.dumps(abi, indent=2, sort_keys=True) + "\n"


def _load_abi(build_dir: Path, artifact: str) -> list[dict[str, Any]]:
    path = build_dir / f"{artifact}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path} is missing: run `brownie compile` first") from None
    abi = data.get("abi")
    if not isinstance(abi, list) or not abi:
        raise SystemExit(f"{path} has no ABI list")
    return abi


def export_abis(build_dir: Path = BUILD_DIR, abi_dir: Path = ABI_DIR, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) every exported ABI; return the names that changed."""
    changed: list[str] = []
    abi_dir.mkdir(parents=True, exist_ok=True)
    for name, artifact in EXPORTS.items():
        text = _render(_load_abi(build_dir, artifact))
        target = abi_dir / f"{name}.json"
        if target.exists() and target.read_text() == text:
            continue
        changed.append(name)
        if not check:
            target.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a shipped ABI differs from the build")
    args = parser.parse_args(argv)
    changed = export_abis(check=args.check)
    if args.check:
        if changed:
            print(f"ABIs out of date: {', '.join(changed)} (run scripts/export_abis.py)", file=sys.stderr)
            return 1
        print("ABIs up to date")
        return 0
    print(f"wrote {len(changed)} ABI file(s) to {ABI_DIR.relative_to(ROOT)}: {', '.join(changed) or 'none changed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
