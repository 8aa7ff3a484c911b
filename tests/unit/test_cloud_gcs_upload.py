"""The resumable upload's protocol steps as Cloud Storage documents them
(cloud.google.com/storage/docs/performing-resumable-uploads): ``Content-Range`` of each chunk, ``308`` +
``Range: bytes=0-N`` (the server may keep less than was sent), the status query ``bytes */TOTAL`` after a
failure, expired sessions, and the retry limit. The emulator test (tests/integration/test_cloud_gcp_push.py)
runs the same code over a real connection that is cut."""

from __future__ import annotations

import io
from typing import Any

import pytest

from linuxkit.cloud.gcs_upload import ResumableUpload, UploadError, crc32c_b64

K256 = 256 * 1024


class Answer:
    def __init__(self, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self._body = body
        self.text = ""

    def json(self) -> Any:
        return self._body


class Server:
    """A session answering each PUT from a script (an exception is raised instead of answering)."""

    def __init__(self, script: list[Answer | Exception]) -> None:
        self.script = script
        self.ranges: list[str] = []
        self.sizes: list[int] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        assert method == "PUT" and url == "http://gcs/session"
        self.ranges.append(kwargs["headers"]["Content-Range"])
        self.sizes.append(len(kwargs["data"]))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def upload(server: Server, size: int, chunk: int = K256, attempts: int = 6) -> ResumableUpload:
    return ResumableUpload(
        http=server, session_url="http://gcs/session", source=io.BytesIO(bytes(size)), size=size,
        chunk=chunk, attempts=attempts, sleep=lambda s: None,
    )  # fmt: skip


def test_chunks_follow_what_the_server_says_it_has() -> None:
    size = 3 * K256 + 100
    server = Server(
        [
            Answer(308, {"Range": f"bytes=0-{K256 - 1}"}),
            Answer(308, {"Range": "bytes=0-399999"}),  # kept only part of the second chunk
            Answer(308, {"Range": f"bytes=0-{400000 + K256 - 1}"}),
            Answer(200, body={"name": "o", "size": str(size)}),
        ]
    )
    assert upload(server, size).run() == {"name": "o", "size": str(size)}
    assert server.ranges == [
        f"bytes 0-{K256 - 1}/{size}",
        f"bytes {K256}-{2 * K256 - 1}/{size}",
        f"bytes 400000-{400000 + K256 - 1}/{size}",
        f"bytes {400000 + K256}-{size - 1}/{size}",
    ]
    assert server.sizes == [K256, K256, K256, size - 400000 - K256]


def test_a_failure_asks_the_server_where_it_stands_then_goes_on() -> None:
    size = 2 * K256
    server = Server(
        [
            Answer(308, {"Range": f"bytes=0-{K256 - 1}"}),
            ConnectionError("connection reset"),
            Answer(308, {"Range": f"bytes=0-{K256 - 1}"}),  # the status query's answer
            Answer(503),
            Answer(308, {}),  # nothing kept?? then start again from 0
            Answer(308, {"Range": f"bytes=0-{K256 - 1}"}),
            Answer(201, body={"size": str(size)}),
        ]
    )
    job = upload(server, size)
    job.run()
    assert server.ranges == [
        f"bytes 0-{K256 - 1}/{size}",
        f"bytes {K256}-{size - 1}/{size}",
        f"bytes */{size}",
        f"bytes {K256}-{size - 1}/{size}",
        f"bytes */{size}",
        f"bytes 0-{K256 - 1}/{size}",
        f"bytes {K256}-{size - 1}/{size}",
    ]
    assert job.recoveries == 2


def test_the_status_query_can_finish_the_upload() -> None:
    server = Server([ConnectionError("reset after the last byte"), Answer(200, body={"size": "10"})])
    assert upload(server, 10).run() == {"size": "10"}


def test_expired_sessions_and_repeated_failures_are_errors() -> None:
    with pytest.raises(UploadError, match="expired"):
        upload(Server([Answer(410)]), 10).run()
    with pytest.raises(UploadError, match="3 times"):
        upload(Server([Answer(500), Answer(500), Answer(500)]), 10, attempts=3).run()
    with pytest.raises(UploadError, match="HTTP 403"):
        upload(Server([Answer(403)]), 10).run()
    with pytest.raises(ValueError, match="256 KiB"):
        upload(Server([]), 10, chunk=1000).run()


def test_crc32c_is_cloud_storages_encoding() -> None:
    google_crc32c = pytest.importorskip("google_crc32c")
    # RFC 3720's check value: CRC32C("123456789") = 0xE3069283
    assert crc32c_b64(io.BytesIO(b"123456789"), google_crc32c.extend) == "4waSgw=="
