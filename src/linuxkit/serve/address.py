"""``--port``: Go's listen address ``[HOST]:PORT`` (upstream's default ``:8080``: every interface).

``HOST`` is a name, an IPv4 address or a bracketed IPv6 address (``[::1]:8080``); empty means every
interface (IPv6 and IPv4 on one dual-stack socket where the host has IPv6, as Go listens). ``PORT`` is
a number (``0``: any free port, reported when listening) or a service name (``:http``). A bare number
(``8080``) is accepted too, as ``:8080`` (Go would refuse it: "missing port in address").
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from ..errors import UserError

HINT = (
    "--port takes [HOST]:PORT, e.g. :8080 (every interface), 127.0.0.1:8080, [::1]:8080, or 127.0.0.1:0 (any free port)"
)


class ListenAddress(NamedTuple):
    """Where to listen: ``host`` (empty: every interface) and ``port``."""

    host: str
    port: int

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"


def _port_number(text: str, given: str) -> int:
    if text.isascii() and text.isdigit():
        port = int(text)
    else:
        try:
            port = socket.getservbyname(text, "tcp")
        except OSError:
            raise UserError(f"--port {given}: unknown port {text!r}", hint=HINT) from None
    if not 0 <= port <= 65535:
        raise UserError(f"--port {given}: port {port} is out of range (0-65535)", hint=HINT)
    return port


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``--port``; raises :class:`UserError` with a hint for anything else."""
    given = text
    text = text.strip()
    if text.isascii() and text.isdigit():
        return ListenAddress("", _port_number(text, given))
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise UserError(f"--port {given}: expected [IPV6]:PORT", hint=HINT)
        host, port = text[1:close], text[close + 2 :]
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            raise UserError(f"--port {given}: missing port in address", hint=HINT)
        if ":" in host:
            raise UserError(f"--port {given}: an IPv6 address must be in brackets, e.g. [::1]:8080", hint=HINT)
    if not port:
        raise UserError(f"--port {given}: missing port in address", hint=HINT)
    return ListenAddress(host, _port_number(port, given))


def bind_targets(addr: ListenAddress) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    """The ``(family, sockaddr)`` to try in order for ``addr``; raises :class:`UserError` when its host
    name does not resolve."""
    if addr.host == "":
        if socket.has_dualstack_ipv6():
            return [(socket.AF_INET6, ("::", addr.port))]
        return [(socket.AF_INET, ("0.0.0.0", addr.port))]
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--port {addr}: cannot resolve {addr.host!r}: {exc.strerror}", hint=HINT) from None
    out: list[tuple[socket.AddressFamily, tuple[str, int]]] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            target = (family, (str(sockaddr[0]), int(sockaddr[1])))
            if target not in out:
                out.append(target)
    if not out:
        raise UserError(f"--port {addr}: {addr.host!r} has no IPv4 or IPv6 address", hint=HINT)
    return out
