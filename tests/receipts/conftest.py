"""Fixtures for receipt tests (helpers and fixed keys live in receipt_helpers.py)."""

from __future__ import annotations

import pytest
from receipt_helpers import SETTLEMENT

from nodeclient.receipts import ReceiptDomain, receipt_domain


@pytest.fixture(scope="session")
def domain() -> ReceiptDomain:
    return receipt_domain(31337, SETTLEMENT)
