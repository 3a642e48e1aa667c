"""Accounts: Web3 Secret Storage keystores in the data dir, and an unlocked signer that never leaks.

Keystores are the standard encrypted JSON (eth-account ``encrypt``/``decrypt``, scrypt by default),
stored as ``<data dir>/keystores/<alias>.json`` with mode 0600 in a 0700 directory, written through a
temporary file and an atomic rename so a crash never leaves half a keystore.

Key hygiene, because a traceback or a debug log is the usual way keys escape:

- private keys enter only from a file or a hidden prompt, never from argv (shell history, ``ps``);
- every error raised on a path that handled key material is a fresh ``KeystoreError`` raised
  ``from None``: the original exception (whose message or frame locals might hold the key) is
  neither chained nor shown;
- :class:`Signer` and :class:`Secret` have reprs without the secret and refuse to be pickled.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.messages import encode_typed_data
from eth_utils import is_hex_address, to_checksum_address

from nodeclient._utils.files import atomic_write
from nodeclient.errors import KeystoreError, NotFoundError

__all__ = [
    "ALIAS_PATTERN",
    "AccountInfo",
    "InvalidAliasError",
    "InvalidPrivateKeyError",
    "KeyManager",
    "KeystoreExistsError",
    "KeystoreFormatError",
    "KeystoreNotFoundError",
    "Secret",
    "Signer",
    "WeakPasswordError",
    "WrongPasswordError",
    "parse_private_key",
    "read_password_file",
]

log = logging.getLogger(__name__)

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


class InvalidAliasError(KeystoreError):
    """An account alias is not a safe file name."""

    def __init__(self, alias: str) -> None:
        super().__init__(
            f"invalid account alias {alias!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


class KeystoreExistsError(KeystoreError):
    """An account with this alias or address already exists."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} already exists; choose another alias or delete the old keystore first")


class KeystoreNotFoundError(KeystoreError, NotFoundError):
    """No keystore for the alias, address or path given."""

    def __init__(self, what: str, directory: Path | None = None) -> None:
        where = f" in {directory}" if directory is not None else ""
        super().__init__(f"no keystore for {what}{where}; see `kuota account list`")


class KeystoreFormatError(KeystoreError):
    """A file is not a Web3 Secret Storage keystore."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path} is not a usable keystore: {problem}")


class WrongPasswordError(KeystoreError):
    """The password does not decrypt the keystore."""

    def __init__(self, what: str) -> None:
        super().__init__(f"wrong password for keystore {what} (the MAC check failed)")


class InvalidPrivateKeyError(KeystoreError):
    """Private key input is malformed. The message describes the shape only, never the value."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid private key: {problem}")


class WeakPasswordError(KeystoreError):
    """A new keystore password is empty or too short."""

    def __init__(self, length: int) -> None:
        super().__init__(f"password too short ({length} characters); use at least {MIN_PASSWORD_LENGTH}")


class Secret:
    """A string that keeps out of reprs, logs and pickles. ``.reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; pass it straight to the function that needs it."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class AccountInfo:
    """A keystore on disk: what ``kuota account list`` shows."""

    alias: str
    address: str
    path: Path

    def to_json(self) -> dict[str, str]:
        """Stable machine form."""
        return {"alias": self.alias, "address": self.address, "path": str(self.path)}


class Signer:
    """An unlocked account. Signs transactions, typed data and receipts; shows only its address."""

    __slots__ = ("_account", "address", "alias")

    def __init__(self, account: Any, alias: str | None = None) -> None:
        self._account = account
        self.address: str = account.address
        self.alias = alias

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        """Sign an EIP-1559 transaction dict."""
        return self._account.sign_transaction(tx)

    def sign_typed_data(self, full_message: dict[str, Any]) -> bytes:
        """EIP-712 signature (65 bytes r‖s‖v, v ∈ {27, 28}) of ``full_message``."""
        signed = self._account.sign_message(encode_typed_data(full_message=full_message))
        return bytes(signed.signature)

    def private_key_bytes(self) -> bytes:
        """The raw key, for signers that need it (the receipt signer). Never log or store it."""
        return bytes(self._account.key)

    def __repr__(self) -> str:
        return f"Signer(alias={self.alias!r}, address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Signer cannot be pickled")


def read_password_file(path: Path | str) -> Secret:
    """Read a password file (one line; the trailing newline is not part of the password)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFoundError(f"password file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"password file {path} cannot be read ({type(exc).__name__})") from None
    return Secret(text.rstrip("\r\n"))


def parse_private_key(text: str) -> bytes:
    """32 key bytes from hex text (0x optional); errors describe the shape, never the value."""
    # Errors describe the shape, never echo the value: it may be a real key with one typo.
    candidate = text.strip()
    if candidate.startswith(("0x", "0X")):
        candidate = candidate[2:]
    if len(candidate) != 64:
        raise InvalidPrivateKeyError(f"expected 64 hex digits (32 bytes), got {len(candidate)} characters")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", candidate):
        raise InvalidPrivateKeyError("it contains characters that are not hex digits")
    raw = bytes.fromhex(candidate)
    value = int.from_bytes(raw, "big")
    # secp256k1 group order: keys must be in [1, n-1].
    if not 0 < value < 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141:
        raise InvalidPrivateKeyError("it is outside the secp256k1 key range")
    return raw


def _validate_keystore_json(data: Any, where: str) -> str:
    if not isinstance(data, dict):
        raise KeystoreFormatError(where, f"expected a JSON object, got {type(data).__name__}")
    if data.get("version") != 3:
        raise KeystoreFormatError(where, f"expected version 3, got {data.get('version')!r}")
    crypto = data.get("crypto") or data.get("Crypto")
    if not isinstance(crypto, dict) or not {"cipher", "ciphertext", "kdf", "mac"} <= crypto.keys():
        raise KeystoreFormatError(where, "the crypto section is missing or incomplete")
    address = data.get("address")
    if not isinstance(address, str) or not is_hex_address("0x" + address.removeprefix("0x")):
        raise KeystoreFormatError(where, f"the address field {address!r} is not an address")
    return to_checksum_address("0x" + address.removeprefix("0x"))


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` mode 0600, atomically; never overwrite an existing keystore."""
    try:
        atomic_write(path, data, mode=0o600, exclusive=True)
    except FileExistsError:
        raise KeystoreExistsError(f"file {path}") from None


class KeyManager:
    """Keystores of one installation (``<data dir>/keystores``).

    Args:
        data_dir: the installation's data dir.
        kdf_iterations: scrypt ``n`` for new keystores; ``None`` keeps eth-account's default (2**18).
    """

    def __init__(self, data_dir: Path, kdf_iterations: int | None = None) -> None:
        self.directory = Path(data_dir) / "keystores"
        self.kdf_iterations = kdf_iterations

    def __repr__(self) -> str:
        return f"KeyManager({str(self.directory)!r})"

    # -- listing and lookup ---------------------------------------------------------------------

    def list(self) -> list[AccountInfo]:
        """Every readable keystore, sorted by alias. Unreadable files are skipped (see ``problems``)."""
        return sorted(self._scan()[0], key=lambda info: info.alias)

    def problems(self) -> list[str]:
        """One line per file in the keystore dir that is not a usable keystore."""
        return self._scan()[1]

    def _scan(self) -> tuple[list[AccountInfo], list[str]]:
        infos: list[AccountInfo] = []
        problems: list[str] = []
        if not self.directory.is_dir():
            return infos, problems
        for path in sorted(self.directory.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                address = _validate_keystore_json(json.loads(path.read_text()), str(path))
            except (OSError, ValueError, KeystoreError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            infos.append(AccountInfo(alias=path.stem, address=address, path=path))
        return infos, problems

    def find(self, ref: str) -> AccountInfo:
        """Find a keystore by alias or address (any case)."""
        for info in self.list():
            if info.alias == ref or (is_hex_address(ref) and info.address.lower() == ref.lower()):
                return info
        raise KeystoreNotFoundError(f"account {ref!r}", self.directory)

    def info_for_file(self, path: Path | str) -> AccountInfo:
        """Describe an explicit keystore file (``--keystore``)."""
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeystoreNotFoundError(f"file {str(path)!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeystoreFormatError(path, f"cannot be read ({type(exc).__name__})") from None
        except json.JSONDecodeError as exc:
            raise KeystoreFormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return AccountInfo(alias=path.stem, address=_validate_keystore_json(data, str(path)), path=path)

    # -- creating ---------------------------------------------------------------------------------

    def check_new(self, alias: str, address: str | None) -> Path:
        """Path for a new keystore ``alias``; refuses a bad alias, a taken alias or a known address."""
        if not ALIAS_PATTERN.match(alias):
            raise InvalidAliasError(alias)
        path = self.directory / f"{alias}.json"
        if path.exists():
            raise KeystoreExistsError(f"account {alias!r}")
        if address is not None:
            for info in self.list():
                if info.address == address:
                    raise KeystoreExistsError(f"address {address} (as account {info.alias!r})")
        return path

    @staticmethod
    def _check_password(password: Secret) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPasswordError(len(password))

    def _store(self, alias: str, key: bytes, password: Secret) -> AccountInfo:
        try:
            account = Account.from_key(key)
            keyfile = Account.encrypt(key, password.reveal(), iterations=self.kdf_iterations)
        except Exception:  # noqa: BLE001 - never chain: the exception's frames hold the key
            raise KeystoreError("could not encrypt the key (eth-account refused it)") from None
        path = self.check_new(alias, account.address)
        _write_private(path, json.dumps(keyfile).encode())
        return AccountInfo(alias=alias, address=account.address, path=path)

    def new(self, alias: str, password: Secret) -> AccountInfo:
        """Create a fresh random account, stored encrypted under ``alias``."""
        self.check_new(alias, None)
        self._check_password(password)
        return self._store(alias, bytes(Account.create().key), password)

    def import_private_key(self, alias: str, private_key: Secret, password: Secret) -> AccountInfo:
        """Store a private key (hex, from a file or prompt) encrypted under ``alias``."""
        self.check_new(alias, None)
        self._check_password(password)
        return self._store(alias, parse_private_key(private_key.reveal()), password)

    def import_keystore(self, alias: str, source: Path | str, password: Secret) -> AccountInfo:
        """Copy an existing keystore in after checking that ``password`` opens it (kept encrypted as is)."""
        info = self.info_for_file(source)
        path = self.check_new(alias, info.address)
        raw = Path(source).expanduser().read_bytes()
        self._decrypt(json.loads(raw), password, str(source))
        _write_private(path, raw)
        return AccountInfo(alias=alias, address=info.address, path=path)

    def export(self, ref: str, destination: Path | str) -> AccountInfo:
        """Write the (still encrypted) keystore of ``ref`` to ``destination``, mode 0600, never overwriting."""
        info = self.find(ref)
        _write_private(Path(destination).expanduser(), info.path.read_bytes())
        return info

    # -- unlocking --------------------------------------------------------------------------------

    @staticmethod
    def _decrypt(data: dict[str, Any], password: Secret, what: str) -> bytes:
        try:
            return bytes(Account.decrypt(data, password.reveal()))
        except ValueError as exc:
            if "MAC mismatch" in str(exc):
                raise WrongPasswordError(what) from None
            raise KeystoreFormatError(what, "eth-account could not decrypt it (unsupported or damaged)") from None
        except Exception:  # noqa: BLE001 - never chain: frames hold the password
            raise KeystoreFormatError(what, "eth-account could not decrypt it (unsupported or damaged)") from None

    def unlock(self, info: AccountInfo, password: Secret) -> Signer:
        """Decrypt ``info``'s keystore into a :class:`Signer`."""
        try:
            data = json.loads(info.path.read_text())
        except FileNotFoundError:
            raise KeystoreNotFoundError(f"file {str(info.path)!r}") from None
        except (OSError, ValueError) as exc:
            raise KeystoreFormatError(info.path, f"cannot be read ({type(exc).__name__})") from None
        _validate_keystore_json(data, str(info.path))
        mode = info.path.stat().st_mode & 0o777
        if mode & 0o077:
            # Encrypted, but a readable keystore invites offline password guessing: say so loudly.
            log.warning("keystore %s is readable by other users (mode %o); run: chmod 600 %s", info.path, mode, info.path)
        key = self._decrypt(data, password, f"{info.alias!r} ({info.address})")
        try:
            account = Account.from_key(key)
        except Exception:  # noqa: BLE001
            raise KeystoreFormatError(info.path, "it decrypts to an invalid key") from None
        if account.address != info.address:
            raise KeystoreFormatError(info.path, f"its key belongs to {account.address}, not {info.address}")
        return Signer(account, alias=info.alias)

