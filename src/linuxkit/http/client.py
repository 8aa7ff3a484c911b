"""Requests with redirects and the one retry policy, on top of :mod:`linuxkit.http.transport`.

Registries (with their auth on top, in :mod:`linuxkit.oci.registry.client`), the Debian archive
(:mod:`linuxkit.debian.transport`) and a YAML file given by URL (:mod:`linuxkit.config.load`) all
send through :class:`HttpClient`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from .. import log
from . import retry
from .retry import RETRY_STATUS, RetryPolicy
from .transport import (
    BodyData,
    CertificateError,
    HttpTransport,
    Response,
    Transport,
    TransportError,
    Unresolvable,
    join_url,
    origin,
)

REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
#: A request body, made anew for each attempt (a file is opened again, a form rebuilt).
Body = Callable[[], BodyData]


class TooManyRedirects(TransportError):
    """More than :data:`MAX_REDIRECTS` redirects (not retried)."""


#: Failures that sending again will not cure.
PERMANENT: tuple[type[TransportError], ...] = (Unresolvable, CertificateError, TooManyRedirects)


class HttpClient:
    """Sends requests, following redirects and retrying as ``policy`` says (default: :data:`retry.DEFAULT`).

    ``transport`` replaces the socket transport (test fakes); otherwise one is made, with
    ``ca_files`` trusted on top of the system's CA store, and closed with the client.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        ca_files: Iterable[str] = (),
    ) -> None:
        self._own_transport = transport is None
        self.transport: Transport = transport if transport is not None else HttpTransport(ca_files=ca_files)
        self._policy = policy
        self.timeout = timeout

    @property
    def policy(self) -> RetryPolicy:
        return self._policy if self._policy is not None else retry.DEFAULT

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._own_transport:
            self.transport.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        verify: bool = True,
    ) -> Response:
        """The answer to ``method url`` after redirects, whatever its status.

        Connection errors, 429 and 5xx are retried as the policy says; when they persist, the last
        answer is returned, or the last :class:`TransportError` raised with ``attempts`` set.
        :data:`PERMANENT` failures are raised at once.
        """
        policy = self.policy
        attempt = 0
        while True:
            try:
                resp = self._follow(method, url, dict(headers or {}), body, verify)
            except TransportError as exc:
                exc.attempts = attempt + 1
                if attempt >= policy.retries or isinstance(exc, PERMANENT):
                    raise
                delay = policy.delay(attempt)
                log.debug(f"{method} {url}: {exc}; retrying in {delay:.1f}s")
            else:
                if resp.status_code not in RETRY_STATUS or attempt >= policy.retries:
                    return resp
                delay = policy.delay_for(attempt, resp.headers.get("Retry-After"))
                log.debug(f"{method} {url}: HTTP {resp.status_code}; retrying in {delay:.1f}s")
                resp.close()
            attempt += 1
            policy.sleep(delay)

    def _follow(self, method: str, url: str, headers: dict[str, str], body: Body | None, verify: bool) -> Response:
        """Send, following redirects (registries send blob GETs to storage, often on another host).

        The ``Authorization`` header is not sent to another host: storage URLs carry their own
        signature, and a registry's token must not leak to them.
        """
        start = origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            resp = self.transport.send(
                method, url, headers, body() if body is not None else None, timeout=self.timeout, verify=verify
            )
            location = resp.headers.get("Location")
            if resp.status_code not in REDIRECT_STATUS or not location:
                return resp
            resp.close()
            url = join_url(url, location)
            if not same_site(start, origin(url)):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = None
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")


def same_site(a: tuple[str, str, int], b: tuple[str, str, int]) -> bool:
    """Same scheme, host and port, or the same host moved from HTTP to HTTPS on default ports."""
    return a == b or (a[1] == b[1] and a[0] == "http" and a[2] == 80 and b[0] == "https" and b[2] == 443)


def content_range_start(value: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes START-END/TOTAL`` (a resumed download's answer)."""
    if not value or not value.startswith("bytes "):
        return None
    first = value[6:].partition("-")[0].strip()
    return int(first) if first.isdigit() else None
