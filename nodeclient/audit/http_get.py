"""One bounded HTTP GET for the auditor: bundles and metadata documents others publish.

The body is read up to a limit and no further, so a hostile server cannot make the auditor hold
more than ``limit`` bytes; redirects are followed; any failure is one ``DownloadError`` whose
message is the reason, for the caller to report with its own context.
"""

from __future__ import annotations

__all__ = ["DownloadError", "get_bounded"]


class DownloadError(ValueError):
    """The URL could not be fetched, answered an error, or sent more than allowed."""


def get_bounded(url: str, limit: int, timeout: float) -> tuple[str, bytes]:
    """(final URL after redirects, body) of ``GET url``; raises ``DownloadError`` with the reason."""
    import requests

    try:
        response = requests.get(url, timeout=timeout, stream=True, allow_redirects=True)
        if response.status_code != 200:
            raise DownloadError(f"HTTP {response.status_code} {response.reason}")
        data = response.raw.read(limit + 1, decode_content=True)
    except requests.RequestException as exc:
        raise DownloadError(f"could not be fetched ({type(exc).__name__}: {exc})") from None
    if len(data) > limit:
        raise DownloadError(f"is larger than {limit} bytes")
    return response.url, data
