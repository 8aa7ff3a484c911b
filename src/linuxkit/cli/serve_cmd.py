"""``linuxkit serve``: serve a directory over HTTP (upstream's ``--port`` and ``--directory``), e.g.
``kernel+initrd`` outputs for iPXE; see :mod:`linuxkit.serve` and docs/serve.md."""

from __future__ import annotations

import argparse
import os
import signal
import urllib.parse

from .common import CommonOptions


def flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port", default=":8080", help="Local port to serve on: [HOST]:PORT (default :8080; :0 any free port)"
    )
    p.add_argument("--directory", default=".", help="Directory to serve (default .)")
    p.set_defaults(run="serve_cmd:run")


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..serve import ipxe
    from ..serve.address import parse_listen_address
    from ..serve.server import FileServer

    address = parse_listen_address(args.port)
    server = FileServer(args.directory, address)
    try:
        log.info(f"serving {server.root} on {server.url()}")
        try:
            entries = os.listdir(server.root)
        except OSError:
            entries = []
        for name in ipxe.boot_names(entries):
            log.info(f"  iPXE: chain {server.url()}{urllib.parse.quote(os.fsencode(name + ipxe.SCRIPT_SUFFIX))}")
        log.info("press Ctrl-C to stop")
        server.serve_forever()
    except KeyboardInterrupt as exc:
        # Ctrl-C (or SIGTERM/SIGHUP, see cli.main) is how a server is stopped: not a failure
        signum = getattr(exc, "signum", signal.SIGINT)
        log.info(f"stopped ({signal.Signals(signum).name})")
    finally:
        server.close()
    return 0
