"""Credentials (``--registry-creds``, docker's credential helpers, identity tokens) and resumed blob
downloads, with fake helpers and a fake transport (no registry)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import pytest
from registry_fakes import FakeTransport, Sent

from linuxkit.cli.common import CommonOptions, add_common
from linuxkit.cli.registries import registry_options
from linuxkit.errors import UserError
from linuxkit.http.client import content_range_start
from linuxkit.http.transport import Headers, IncompleteRead, Response
from linuxkit.oci.descriptor import Descriptor
from linuxkit.oci.layout import Layout
from linuxkit.oci.registry import Credentials, RegistryError, RegistryOptions
from linuxkit.oci.registry.client import Client
from linuxkit.oci.registry.manifests import fetch_blob
from linuxkit.oci.registry.options import TOKEN_USER, helper_credentials, load_docker_auths, parse_registry_creds


def test_parse_registry_creds() -> None:
    got = parse_registry_creds(["ghcr.io=me:pa:ss", "https://127.0.0.1:5000/v2/=TOKEN=="])
    assert got == {
        "ghcr.io": Credentials("me", "pa:ss"),
        "127.0.0.1:5000": Credentials("", "TOKEN==", registry_token=True),
    }
    assert "pa:ss" not in repr(got) and "TOKEN" not in repr(got)
    for bad in ("ghcr.io", "=u:p", "ghcr.io=", "ghcr.io=:secret"):
        with pytest.raises(ValueError, match="--registry-creds") as err:
            parse_registry_creds([bad])
        assert "secret" not in str(err.value)


def common_from(argv: list[str]) -> CommonOptions:
    parser = argparse.ArgumentParser()
    add_common(parser, top_level=True)
    return CommonOptions.from_args(parser.parse_args(argv))


def test_registry_creds_flag_is_repeatable() -> None:
    opts = registry_options(common_from(["--registry-creds", "a.example=u:p", "--registry-creds", "b.example=tok"]))
    assert opts.credentials == {
        "a.example": Credentials("u", "p"),
        "b.example": Credentials("", "tok", registry_token=True),
    }
    assert opts.credentials_for("a.example") == Credentials("u", "p")
    with pytest.raises(UserError, match="user name is empty") as err:
        registry_options(common_from(["--registry-creds", "a.example=:p"]))
    assert err.value.hint is not None and "--registry-creds" in err.value.hint


def fake_helper(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    fake_helper(bin_dir, "good", 'read s; [ "$1" = get ] && echo "{\\"Username\\":\\"u-$s\\",\\"Secret\\":\\"s3\\"}"\n')
    fake_helper(bin_dir, "token", 'read s; echo \'{"Username":"<token>","Secret":"refresh"}\'\n')
    fake_helper(bin_dir, "none", "echo 'credentials not found in native keychain'; exit 1\n")
    fake_helper(bin_dir, "broken", "echo 'boom' >&2; exit 3\n")
    fake_helper(bin_dir, "garbage", "echo 'not json'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_helper_protocol(helpers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert helper_credentials("good", "reg.example") == Credentials("u-reg.example", "s3")
    assert helper_credentials("token", "reg.example") == Credentials(TOKEN_USER, "refresh")
    assert helper_credentials("none", "reg.example") is None
    assert helper_credentials("broken", "reg.example") is None
    assert helper_credentials("garbage", "reg.example") is None
    assert helper_credentials("absent", "reg.example") is None
    err = capsys.readouterr().err
    assert "docker-credential-broken failed for reg.example" in err and "boom" in err
    assert "docker-credential-absent" in err and "not installed" in err
    assert "docker-credential-none" not in err  # "not found" is an ordinary answer


def test_config_json_order(helpers: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"file:pw").decode()
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "a.example": {"auth": auth},
                    "b.example": {"auth": auth},
                    "c.example": {"identitytoken": "it"},
                },
                "credsStore": "none",
                "credHelpers": {"https://b.example": "good", "docker.io": "good"},
            }
        )
    )
    opts = RegistryOptions(docker_config=config)
    assert opts.credentials_for("a.example") == Credentials("file", "pw")  # store knows nothing: auths
    assert opts.credentials_for("b.example") == Credentials("u-b.example", "s3")  # credHelpers first
    assert opts.credentials_for("docker.io") == Credentials("u-https://index.docker.io/v1/", "s3")
    assert opts.credentials_for("c.example") == Credentials(TOKEN_USER, "it")
    assert RegistryOptions(docker_config=config, credentials={"b.example": Credentials("x", "y")}).credentials_for(
        "b.example"
    ) == Credentials("x", "y")
    assert load_docker_auths(config)["c.example"] == Credentials(TOKEN_USER, "it")


# -- resumed downloads ----------------------------------------------------------------------------

BLOB = bytes(range(256)) * 4096  # 1 MiB
DESC = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(BLOB).hexdigest(), len(BLOB))


class Cut:
    """``data``, then a broken connection (what the transport raises when a peer goes away)."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readinto(self, buffer: memoryview) -> int:
        n = self.data.readinto(buffer)
        if not n:
            raise IncompleteRead("connection closed with bytes of the body still to come")
        return n

    def close(self) -> None:
        pass


class CuttingRegistry:
    """Serves BLOB; the first ``cuts`` answers break half-way; ``ranges``: whether Range is honoured."""

    def __init__(self, cuts: int, *, ranges: bool = True, spoil: bool = False) -> None:
        self.cuts, self.ranges, self.spoil = cuts, ranges, spoil
        self.asked: list[str] = []

    def __call__(self, request: Sent) -> Response:
        wanted = request.header("Range") or ""
        self.asked.append(wanted)
        start = int(wanted[6:-1]) if wanted and self.ranges else 0
        body = BLOB[start:]
        headers = {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"} if start else {}
        if self.cuts > 0:
            self.cuts -= 1
            half = body[: len(body) // 2]
            stream = Cut(b"X" + half[1:] if self.spoil else half)
            return Response(206 if start else 200, Headers(headers.items()), stream)
        return Response.of_bytes(206 if start else 200, headers, body)


def fetch_with(server: CuttingRegistry, tmp_path: Path, retries: int = 3) -> list[int]:
    transport = FakeTransport(server)
    opts = RegistryOptions(transport=transport, use_docker_config=False, sleep=lambda _s: None, retries=retries)
    progress: list[int] = []
    with Client("registry.example", opts, "pulling registry.example/x:1") as client:
        fetch_blob(client, "x", DESC, Layout(tmp_path), progress.append)
    return progress


def assert_blob_ok(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.blob_path(DESC.digest).read_bytes() == BLOB
    assert not list(layout.blobs_dir.glob(".tmp-*"))


def test_broken_transfers_resume_with_range(tmp_path: Path) -> None:
    server = CuttingRegistry(cuts=2)
    progress = fetch_with(server, tmp_path)
    half, quarter = len(BLOB) // 2, len(BLOB) // 4
    assert server.asked == ["", f"bytes={half}-", f"bytes={half + quarter}-"]
    assert sum(progress) == len(BLOB) and min(progress) > 0
    assert_blob_ok(tmp_path)


def test_range_ignored_starts_over(tmp_path: Path) -> None:
    server = CuttingRegistry(cuts=1, ranges=False)
    progress = fetch_with(server, tmp_path)
    assert server.asked == ["", f"bytes={len(BLOB) // 2}-"]
    assert -(len(BLOB) // 2) in progress and sum(progress) == len(BLOB)
    assert_blob_ok(tmp_path)


def test_resumed_blob_is_verified_whole(tmp_path: Path) -> None:
    server = CuttingRegistry(cuts=1, spoil=True)
    fetch_with(server, tmp_path)
    assert server.asked == ["", f"bytes={len(BLOB) // 2}-", ""]  # spoiled: the whole blob again
    assert_blob_ok(tmp_path)


def testcontent_range_start() -> None:
    assert content_range_start("bytes 100-199/200") == 100
    assert content_range_start("bytes */200") is None
    assert content_range_start(None) is None


def test_transfer_that_keeps_breaking_fails_after_retries(tmp_path: Path) -> None:
    server = CuttingRegistry(cuts=10, spoil=True)
    with pytest.raises(RegistryError, match=r"pulling registry\.example/x:1: blob sha256:") as err:
        fetch_with(server, tmp_path, retries=3)
    n = len(BLOB)
    assert server.asked == ["", f"bytes={n // 2}-", f"bytes={n * 3 // 4}-", f"bytes={n * 7 // 8}-"]
    assert err.value.hint is not None and "pull again" in err.value.hint
    assert not Layout(tmp_path).has_blob(DESC.digest)
    assert not list((tmp_path / "blobs" / "sha256").glob(".tmp-*"))
