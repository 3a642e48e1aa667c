"""The Kuota Brownie project, loaded once: the one place the deploy and migration scripts get it.

Kept apart from ``scripts/deploy_system.py`` so that modules the deploy drives (the governance
hand-over) can load contracts without importing the deploy back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ROOT", "load_project"]

ROOT = Path(__file__).resolve().parents[1]


def load_project() -> Any:
    """The loaded Brownie project (``brownie run``/tests load it; plain Python loads it here)."""
    from brownie import project

    loaded = project.get_loaded_projects()
    if loaded:
        return loaded[0]
    return project.load(ROOT, name="KuotaProject")
