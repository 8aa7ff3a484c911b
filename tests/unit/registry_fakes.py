"""A fake registry transport for unit tests: answers each request with a handler, records them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from linuxkit.http.transport import BodyData, Response

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Sent:
    """One request as the transport received it (header names as sent)."""

    method: str
    url: str
    headers: dict[str, str]
    body: BodyData

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class FakeTransport:
    """``handler`` answers a :class:`Sent` with a :data:`Reply` or a ready :class:`Response`."""

    handler: Callable[[Sent], Reply | Response]
    sent: list[Sent] = field(default_factory=list)
    closed: bool = False

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: BodyData, *, timeout: float, verify: bool
    ) -> Response:
        request = Sent(method, url, dict(headers), body)
        self.sent.append(request)
        answer = self.handler(request)
        if isinstance(answer, Response):
            return answer
        status, reply_headers, data = answer
        return Response.of_bytes(status, reply_headers, data, url)

    def close(self) -> None:
        self.closed = True
