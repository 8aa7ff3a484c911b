"""The per-connection relay of ``run qemu --metadata``: qemu's user network (slirp) runs this program for
each TCP connection the guest opens to the metadata address (``guestfwd=...-cmd:``), with the connection
on its stdin/stdout; it copies both ways to the metadata server's Unix socket (``argv[1]``).

It runs as ``python -I -S mdrelay.py SOCKET`` and imports only C modules (``_socket``, ``select``): about
14 ms a connection, against 45 ms with ``socket`` and ``threading`` (measured on the CI host)."""

import _socket
import os
import select
import sys


def relay(path: str) -> int:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        return 1
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == 0:
                data = os.read(0, 65536)
                if data:
                    sock.sendall(data)
                else:  # the guest closed its side: tell the server, keep reading its answer
                    poller.unregister(0)
                    sock.shutdown(_socket.SHUT_WR)
            else:
                data = sock.recv(65536)
                if not data:
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view) :]


if __name__ == "__main__":
    sys.exit(relay(sys.argv[1]))
