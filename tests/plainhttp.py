"""One plain HTTP request for tests that look at a server directly (standard library only, no
proxies, nothing of linuxkit's own HTTP stack, so that what they check is not checked by itself)."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Mapping


def request(
    method: str, url: str, headers: Mapping[str, str] | None = None, timeout: float = 5
) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of ``method url``; connection errors raise ``OSError``."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()
