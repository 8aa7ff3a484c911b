"""A YAML file given by URL, served by a local http.server: fetched through the one HTTP stack
(redirects, retries on 5xx, proxies from the environment), bounded in size, errors as UserError."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from linuxkit.config.load import load_configs
from linuxkit.config.yamlload import MAX_BYTES
from linuxkit.errors import ConfigError, UserError
from linuxkit.http import retry

YAML = b"init: [a]\nonboot:\n  - name: x\n    image: alpine\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    failures: ClassVar[int] = 0  # 503 answers before the file
    requests: ClassVar[list[str]] = []  # request lines

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.requestline)
        path = self.path.partition("://")[2].partition("/")[1:] if "://" in self.path else ("", self.path)
        path_only = "".join(path)
        if path_only == "/old.yml":
            self.reply(302, b"", {"Location": "/c.yml"})
        elif path_only == "/c.yml" and Handler.failures > 0:
            Handler.failures -= 1
            self.reply(503, b"busy")
        elif path_only == "/c.yml":
            self.reply(200, YAML)
        elif path_only == "/huge.yml":
            self.reply(200, b"#" * (MAX_BYTES + 10))
        else:
            self.reply(404, b"not here")

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    Handler.failures, Handler.requests = 0, []
    slept: list[float] = []
    monkeypatch.setattr(retry, "DEFAULT", retry.RetryPolicy(sleep=slept.append))
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_yaml_by_url_follows_redirects_and_retries(server: str) -> None:
    Handler.failures = 2
    cfg = load_configs([f"{server}/old.yml"], resolve_packages=False)
    assert cfg.moby.init == ["a"]
    assert cfg.sources[0].name == f"{server}/old.yml" and cfg.sources[0].directory is None
    assert [r.split()[1] for r in Handler.requests] == [
        "/old.yml",
        "/c.yml",
        "/old.yml",
        "/c.yml",
        "/old.yml",
        "/c.yml",
    ]


def test_yaml_by_url_goes_through_the_proxy_the_environment_names(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", server)  # the server answers absolute-form requests as a proxy would
    cfg = load_configs(["http://config.invalid/c.yml"], resolve_packages=False)
    assert cfg.moby.init == ["a"]
    assert Handler.requests == ["GET http://config.invalid/c.yml HTTP/1.1"]
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    load_configs([f"{server}/c.yml"], resolve_packages=False)
    assert Handler.requests[-1] == "GET /c.yml HTTP/1.1"  # straight to the server


def test_yaml_by_url_errors(server: str) -> None:
    with pytest.raises(UserError, match=r"cannot fetch remote yaml file .*/nope\.yml: HTTP 404") as info:
        load_configs([f"{server}/nope.yml"], resolve_packages=False)
    assert info.value.hint == "check the URL"
    Handler.failures = 100
    with pytest.raises(UserError, match=r"c\.yml: HTTP 503"):
        load_configs([f"{server}/c.yml"], resolve_packages=False)
    assert len(Handler.requests) == 1 + 1 + retry.DEFAULT.retries
    with pytest.raises(ConfigError, match="YAML file is too large"):
        load_configs([f"{server}/huge.yml"], resolve_packages=False)
    with pytest.raises(UserError, match=r"cannot fetch remote yaml file http://nohost\.invalid/c\.yml: .*resolve"):
        load_configs(["http://nohost.invalid/c.yml"], resolve_packages=False)
