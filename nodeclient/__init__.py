"""Kuota's client: keys, chain access, receipts, settlement, rewards and earnings for node operators,
consumers and auditors, with the ``kuota`` command line on top.

Modules by concern: :mod:`nodeclient.config` (settings and network profiles), :mod:`nodeclient.keys`
(keystores), :mod:`nodeclient.chain` (verified connection, journaled transactions, decoded reverts),
:mod:`nodeclient.receipts` (receipt model, signing, durable store, bundles),
:mod:`nodeclient.settlement`, :mod:`nodeclient.rewards`, :mod:`nodeclient.earnings`, and
:mod:`nodeclient.cli`. Importing the package imports nothing heavy (web3 loads on first use).
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]

try:
    __version__ = metadata.version("kuota-nodeclient")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
