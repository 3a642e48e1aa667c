"""Fault-injection tests reuse the client tests' funded installation (keystores of Anvil's accounts)."""

from tests.client.conftest import funded, kenv  # noqa: F401 - fixtures, found by pytest through this import
