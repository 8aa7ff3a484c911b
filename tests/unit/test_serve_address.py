"""``linuxkit serve --port``: Go's ``[HOST]:PORT`` listen addresses (pure parsing, plus binding the
loopback)."""

from __future__ import annotations

import socket

import pytest

from linuxkit.errors import UserError
from linuxkit.serve.address import ListenAddress, bind_targets, parse_listen_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":8080", ListenAddress("", 8080)),
        ("8080", ListenAddress("", 8080)),
        ("127.0.0.1:0", ListenAddress("127.0.0.1", 0)),
        ("[::1]:9000", ListenAddress("::1", 9000)),
        ("localhost:http", ListenAddress("localhost", 80)),
    ],
)
def test_parses(text: str, expected: ListenAddress) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("localhost", "missing port"),
        ("127.0.0.1:", "missing port"),
        ("::1:80", "in brackets"),
        ("[::1]80", "[IPV6]:PORT"),
        (":70000", "out of range"),
        (":nosuchservice", "unknown port"),
    ],
)
def test_refuses_with_a_hint(text: str, says: str) -> None:
    with pytest.raises(UserError) as err:
        parse_listen_address(text)
    assert says in str(err.value)
    assert err.value.hint and "--port" in err.value.hint


def test_wildcard_and_loopback_targets() -> None:
    (family, sockaddr), *_ = bind_targets(ListenAddress("", 8080))
    assert sockaddr[1] == 8080 and sockaddr[0] in ("::", "0.0.0.0")
    assert family in (socket.AF_INET, socket.AF_INET6)
    assert bind_targets(ListenAddress("127.0.0.1", 0)) == [(socket.AF_INET, ("127.0.0.1", 0))]


def test_str_brackets_ipv6() -> None:
    assert str(ListenAddress("::1", 80)) == "[::1]:80"
    assert str(ListenAddress("", 80)) == ":80"
