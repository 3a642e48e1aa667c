"""Private helpers shared by the client modules (amount parsing, address parsing, formatting)."""
