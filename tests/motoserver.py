"""moto's server in a thread on a free loopback port, the AWS (and S3) emulator of the cloud tests.

moto keeps its backends in module globals: every server of one test process shares them, so a bucket or
snapshot made by one test module is still there for the next one. Each server is therefore reset when it
starts (``POST /moto-api/reset``)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def moto_url() -> Iterator[str]:
    """The server's base URL, ``http://127.0.0.1:PORT``, its state empty; the server is stopped after."""
    from moto import server

    moto = server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30):
            pass
        yield url
    finally:
        moto.stop()
