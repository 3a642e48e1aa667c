"""``GET /bundles/<name>``: the node's receipt bundles, content-addressed, immutable, for auditors.

Two names reach a bundle. ``/bundles/<sha256 hex>[.json]`` is the content address: the SHA-256 of
the file's exact bytes, the name ``nodeclient.receipts.bundles`` writes it under. ``/bundles/0x<root>``
is the name the chain gives: ``BatchSettled`` carries the batch's ``bundleRoot`` (the Merkle root over
the receipts' EIP-712 digests, keccak256) and no URI, so an auditor holding only the event asks for
the root and is redirected (308) to the content address. Both answers are immutable.

Only bundles of batches this node sent (``ReceiptStore.published_bundles``) are served, and only
after the file's bytes were checked against its name: the name in the URL never becomes a path
before it has matched the store's own record, so there is nothing to traverse.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from nodeclient.web.ranges import RangeError, RangeNotSatisfiableError, parse_range

__all__ = ["BUNDLE_CACHE_CONTROL", "BundleLibrary", "DamagedBundleError", "bundle_routes"]

log = logging.getLogger("kuota.web.bundles")

BUNDLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ROOT = re.compile(r"^0x[0-9a-f]{64}$")
_CHUNK = 256 * 1024


class DamagedBundleError(Exception):
    """A recorded bundle file is missing or its bytes no longer hash to its name (answered 500)."""


class BundleLibrary:
    """The bundles ``node`` published: store records checked against the files in ``directory``.

    Blocking (SQLite and file reads): call from a worker thread.
    """

    def __init__(self, store: Any, directory: Path, node: str | None = None) -> None:
        self.store = store
        self.directory = Path(directory)
        self.node = node
        # name → (size, mtime_ns) of files whose bytes were hashed and matched their name.
        self._verified: dict[str, tuple[int, int]] = {}

    def name_for_root(self, root: bytes) -> str | None:
        """The content address (SHA-256 hex) of the published bundle with Merkle root ``root``."""
        for file_name, bundle_root in self.store.published_bundles(node=self.node).items():
            if bundle_root == root:
                return file_name.removesuffix(".json")
        return None

    def path_for(self, sha256_hex: str) -> Path | None:
        """The verified file of published bundle ``sha256_hex``, or None when this node published none."""
        file_name = f"{sha256_hex}.json"
        if file_name not in self.store.published_bundles(node=self.node):
            return None
        path = self.directory / file_name
        try:
            stat = path.stat()
        except OSError as exc:
            raise DamagedBundleError(f"bundle {file_name} is recorded but cannot be read: {exc.strerror}") from None
        fingerprint = (stat.st_size, stat.st_mtime_ns)
        if self._verified.get(file_name) != fingerprint:
            if hashlib.sha256(path.read_bytes()).hexdigest() != sha256_hex:
                raise DamagedBundleError(f"bundle file {path} no longer hashes to its name")
            self._verified[file_name] = fingerprint
        return path


def _read_slice(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(start)
        return fh.read(length)


def _immutable_headers(sha256_hex: str) -> dict[str, str]:
    return {"ETag": f'"{sha256_hex}"', "Cache-Control": BUNDLE_CACHE_CONTROL, "Accept-Ranges": "bytes"}


def _not_modified(request: web.Request, etag: str) -> bool:
    candidates = {c.strip() for c in request.headers.get("If-None-Match", "").split(",")}
    return etag in candidates or "*" in candidates


class _BundleHandler:
    def __init__(self, library: BundleLibrary, max_range_bytes: int) -> None:
        self.library = library
        self.max_range_bytes = max_range_bytes

    async def get(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"].lower()
        try:
            if _ROOT.match(name):
                return await self._redirect(bytes.fromhex(name[2:]))
            sha256_hex = name.removesuffix(".json")
            if not _SHA256.match(sha256_hex):
                raise web.HTTPNotFound(text=f"{name!r} is not a bundle name (sha256 hex, or 0x + bundle root)\n")
            path = await asyncio.to_thread(self.library.path_for, sha256_hex)
        except DamagedBundleError as exc:
            log.error("%s; not serving it", exc)
            raise web.HTTPInternalServerError(text="bundle damaged on the node\n") from None
        if path is None:
            raise web.HTTPNotFound(text=f"no published bundle {name}\n")
        return await self._serve(request, path, sha256_hex)

    async def _redirect(self, root: bytes) -> web.StreamResponse:
        sha256_hex = await asyncio.to_thread(self.library.name_for_root, root)
        if sha256_hex is None:
            raise web.HTTPNotFound(text=f"no published bundle with root 0x{root.hex()}\n")
        # A root names one set of receipts, hence one canonical file: the redirect never changes.
        raise web.HTTPPermanentRedirect(f"/bundles/{sha256_hex}.json", headers={"Cache-Control": BUNDLE_CACHE_CONTROL})

    async def _serve(self, request: web.Request, path: Path, sha256_hex: str) -> web.StreamResponse:
        headers = _immutable_headers(sha256_hex)
        if _not_modified(request, headers["ETag"]):
            return web.Response(status=304, headers=headers)
        size = path.stat().st_size
        wanted = request.headers.get("Range")
        if wanted is not None and request.headers.get("If-Range", headers["ETag"]) == headers["ETag"]:
            return await self._serve_range(request, path, size, wanted, headers)
        response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/json"})
        response.content_length = size
        await response.prepare(request)
        if request.method != "HEAD":
            offset = 0
            while offset < size:
                chunk = await asyncio.to_thread(_read_slice, path, offset, min(_CHUNK, size - offset))
                if not chunk:
                    break
                await response.write(chunk)
                offset += len(chunk)
        await response.write_eof()
        return response

    async def _serve_range(
        self, request: web.Request, path: Path, size: int, wanted: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        try:
            selected = parse_range(wanted, size, self.max_range_bytes)
        except RangeError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        except RangeNotSatisfiableError as exc:
            raise web.HTTPRequestRangeNotSatisfiable(
                text=f"{exc}\n", headers={"Content-Range": f"bytes */{size}"}
            ) from None
        # aiohttp leaves the body out of a HEAD answer itself, keeping its Content-Length.
        body = await asyncio.to_thread(_read_slice, path, selected.start, selected.length)
        return web.Response(
            status=206, body=body, content_type="application/json",
            headers={**headers, "Content-Range": selected.content_range},
        )


def bundle_routes(library: BundleLibrary, max_range_bytes: int) -> list[web.RouteDef]:
    """The ``/bundles/{name}`` route (GET and HEAD) over ``library``."""
    handler = _BundleHandler(library, max_range_bytes)
    return [web.get("/bundles/{name}", handler.get)]
