"""``python -m linuxkit.run.mdhost SPEC``: the background half of ``run qemu --detached --metadata PROVIDER``.
Reads (and removes) the SPEC file ``run qemu`` wrote, serves the provider's metadata and runs qemu as its
child; ends when qemu ends (SIGTERM or SIGHUP to it end qemu first)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType

from ..runner import DEVNULL, start
from .metaservice import MetadataServer, instance_from_json


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1])
    spec = json.loads(spec_path.read_text())
    spec_path.unlink()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    server = MetadataServer(
        spec["provider"], instance_from_json(spec["instance"]), Path(spec["log"]), spec["directory"]
    )
    with server, start(spec["argv"], stdin=DEVNULL) as qemu:  # leaving the block terminates qemu
        code = qemu.wait()
    return 128 - code if code is not None and code < 0 else code or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
