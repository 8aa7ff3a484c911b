"""One registry host: base URL (HTTPS, or HTTP where allowed), auth, retries.

A :class:`Client` is made per operation; its token cache maps (repository, actions) to a
bearer token, so pulling from several repositories or pushing (``pull,push``) each get the
scope they need.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import TracebackType

from ... import log
from ...http.client import MAX_REDIRECTS, Body, HttpClient, TooManyRedirects
from ...http.retry import RetryPolicy
from ...http.transport import (
    CertificateError,
    HttpTransport,
    Response,
    Transport,
    TransportError,
    join_url,
    speaks_tls,
    split_url,
)
from .auth import Challenge, parse_challenge, scope, token_from
from .errors import AuthError, RegistryError
from .options import TOKEN_USER, Credentials, RegistryOptions

#: Transport failures worth retrying: refused, reset or timed-out connections, cut bodies.
TRANSIENT: tuple[type[Exception], ...] = (TransportError,)


class Client:
    """Requests to one registry for one image (``what`` names it in errors)."""

    def __init__(self, domain: str, options: RegistryOptions, what: str, *, mirror: str | None = None) -> None:
        self.domain = domain
        self.options = options
        self.what = what
        self.host = options.registry_host(domain)
        self._base = mirror.rstrip("/") if mirror else None
        self.http = HttpClient(
            options.transport,
            policy=RetryPolicy(options.retries, options.backoff, options.max_retry_after, options.sleep),
            timeout=options.timeout,
            ca_files=[str(p) for p in options.cert_files],
        )
        self.transport: Transport = self.http.transport
        # certificates are not checked for hosts the user declared insecure (as docker does)
        self._verify = self.host not in options.insecure
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        # pulls fetch blobs from several threads: one token fetch per scope set, not one per thread
        self._auth_lock = threading.RLock()
        self._credentials_loaded = False
        self._credentials: Credentials | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- URLs ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``https://host`` (or ``http://host`` where allowed and HTTPS does not answer), found once."""
        if self._base is None:
            self._base = self._probe()
        return self._base

    def _probe(self) -> str:
        https = f"https://{self.host}"
        if not self.options.allows_http(self.host):
            return https
        if not isinstance(self.transport, HttpTransport):
            return https  # an injected transport (tests) answers whatever is asked
        _, host, port, _ = split_url(https)
        try:
            if speaks_tls(host, port, min(self.options.timeout, 5.0)):
                return https
        except TransportError as exc:
            log.debug(f"registry {self.host}: {exc}")
        log.debug(f"registry {self.host}: no HTTPS, using plain HTTP")
        return f"http://{self.host}"

    def url(self, path_or_url: str) -> str:
        if "://" in path_or_url.partition("?")[0]:
            return path_or_url
        return join_url(self.base_url + "/", path_or_url)

    # -- auth ------------------------------------------------------------------------------------

    @property
    def credentials(self) -> tuple[str, str] | None:
        """User and password (or ``<token>`` and an identity token) for basic auth / the token server."""
        creds = self._creds()
        return (creds.username, creds.password) if creds and not creds.registry_token else None

    def _creds(self) -> Credentials | None:
        with self._auth_lock:
            if not self._credentials_loaded:
                self._credentials = self.options.credentials_for(self.domain)
                self._credentials_loaded = True
            return self._credentials

    def _auth_header(self, scopes: tuple[str, ...]) -> dict[str, str]:
        creds = self._creds()
        if creds is not None and creds.registry_token:
            return {"Authorization": f"Bearer {creds.password}"}  # sent as is, no token server
        with self._auth_lock:
            return self._auth_header_locked(scopes)

    def _auth_header_locked(self, scopes: tuple[str, ...]) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            if self.credentials is None:
                return {}
            return {"Authorization": basic_auth(*self.credentials)}
        if challenge.scheme == "bearer":
            if scopes not in self._tokens:
                self._tokens[scopes] = self._fetch_token(challenge, scopes)
            return {"Authorization": f"Bearer {self._tokens[scopes]}"}
        return {}

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        if not challenge.realm:
            raise AuthError(f"{self.what}: registry {self.host} asked for a token without saying where to get it")
        params: list[tuple[str, str]] = [("scope", s) for s in scopes]
        if challenge.service:
            params.append(("service", challenge.service))
        auth = self.credentials
        if auth is not None and auth[0] == TOKEN_USER:
            # an identity token (``--registry-creds host=TOKEN``, docker's ``identitytoken``) is
            # exchanged for an access token with the OAuth2 refresh-token grant
            return self._oauth_token(challenge, scopes, auth[1])
        resp = self._send("GET", challenge.realm, params=params, auth=auth)
        try:
            if resp.status_code in (401, 403):
                raise AuthError(
                    f"{self.what}: the token server of {self.host} refused "
                    + (f"the credentials of {auth[0]}" if auth else "anonymous access")
                    + f" (HTTP {resp.status_code}) for {' '.join(scopes)}",
                    hint=f"check the credentials for {self.domain} (docker login {self.domain}, ~/.docker/config.json)",
                )
            if resp.status_code != 200:
                raise RegistryError(f"{self.what}: token server {challenge.realm} answered HTTP {resp.status_code}")
            try:
                token = token_from(resp.json())
            except ValueError:
                token = None
            if token is None:
                raise RegistryError(f"{self.what}: token server {challenge.realm} sent no token")
            return token
        finally:
            resp.close()

    def _oauth_token(self, challenge: Challenge, scopes: tuple[str, ...], refresh_token: str) -> str:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "service": challenge.service or self.host,
            "scope": " ".join(scopes),
            "client_id": "linuxkit",
        }
        resp = self._send("POST", challenge.realm, body=lambda: form)
        try:
            if resp.status_code in (401, 403):
                raise AuthError(
                    f"{self.what}: the token server of {self.host} refused the identity token"
                    f" (HTTP {resp.status_code}) for {' '.join(scopes)}",
                    hint=f"log in to {self.domain} again; the token may have expired",
                )
            try:
                token = token_from(resp.json()) if resp.status_code == 200 else None
            except ValueError:
                token = None
            if token is None:
                raise RegistryError(f"{self.what}: token server {challenge.realm} answered HTTP {resp.status_code}")
            return token
        finally:
            resp.close()

    # -- requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        repository: str,
        actions: str = "pull",
        extra_scopes: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
    ) -> Response:
        """Send with auth and retries; a 401 is answered once by (re)authenticating.

        The token asked for covers ``repository`` with ``actions`` plus ``extra_scopes`` (a
        cross-repository mount also needs ``pull`` on the source). The response is returned
        whatever its status (the caller decides); a 401 that survives authentication raises
        :class:`AuthError`.
        """
        url = self.url(path_or_url)
        scopes = (scope(repository, actions), *extra_scopes)
        for attempt in (1, 2):
            all_headers = {**(headers or {}), **self._auth_header(scopes)}
            resp = self._send(method, url, headers=all_headers, body=body)
            if resp.status_code != 401:
                return resp
            resp.close()
            challenge = parse_challenge(resp.headers.get("WWW-Authenticate") or "")
            if attempt == 2 or challenge is None:
                creds = self._creds()
                who = "with the given registry token" if creds and creds.registry_token else None
                who = who or (f"as {self.credentials[0]}" if self.credentials else "anonymously")
                raise AuthError(
                    f"{self.what}: registry {self.host} refused access {who} to {repository} ({actions})",
                    hint=f"log in to {self.domain} (docker login) or pass credentials for it; "
                    "check the repository name and that you may access it",
                )
            if challenge.scheme == "basic" and self.credentials is None:
                raise AuthError(
                    f"{self.what}: registry {self.host} needs a user name and password",
                    hint=f"log in to {self.domain} (docker login) or pass credentials for it",
                )
            with self._auth_lock:
                self._challenge = challenge
                self._tokens.pop(scopes, None)
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Response:
        """One request with redirects and the retry policy; transport failures become :class:`RegistryError`."""
        all_headers = dict(headers or {})
        if params:
            from urllib.parse import urlencode

            url += ("&" if "?" in url else "?") + urlencode(list(params))
        if auth is not None:
            all_headers["Authorization"] = basic_auth(*auth)
        try:
            return self.http.request(method, url, headers=all_headers, body=body, verify=self._verify)
        except CertificateError as exc:
            raise RegistryError(
                f"{self.what}: the TLS certificate of {self.host} was refused: {exc}",
                hint="pass its CA with --cert-file, or declare the registry insecure",
            ) from exc
        except TooManyRedirects as exc:
            raise RegistryError(f"{self.what}: more than {MAX_REDIRECTS} redirects from {self.host}") from exc
        except TransportError as exc:
            raise RegistryError(
                f"{self.what}: cannot reach registry {self.host}: {_short(exc)}",
                hint=f"check the network and the registry address (tried {exc.attempts} time(s))",
            ) from exc


def http_error(what: str, resp: Response, doing: str) -> RegistryError:
    """An error for an unexpected answer, with the registry's error message when it sent one."""
    detail = ""
    try:
        errors = resp.json(64 << 10).get("errors") or []
        detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, TransportError):
        detail = ""
    resp.close()
    hint = "the registry is overloaded or failing; retry later" if resp.status_code >= 500 else None
    if resp.status_code == 404:
        hint = "check the image name and tag, and that it was pushed"
    return RegistryError(f"{what}: {doing}: HTTP {resp.status_code}" + (f" ({detail})" if detail else ""), hint=hint)


def basic_auth(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _short(exc: BaseException) -> str:
    """The useful end of a transport error."""
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"
