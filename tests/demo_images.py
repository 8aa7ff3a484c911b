"""Write the demo's images (``examples/hello.yml``) as an OCI layout tar: ``python -m tests.demo_images OUT``."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.imagefactory import ImageSpec, directory, file, symlink, write_layout_tar

SH = "#!/bin/sh\n"


def demo_images() -> list[ImageSpec]:
    init = ImageSpec(
        "example.org/demo/init:1",
        [
            [
                directory("bin"),
                file("bin/busybox", b"\x7fELF-demo", 0o755),
                symlink("bin/sh", "busybox"),
                directory("etc"),
                file("etc/issue", "Welcome to LinuxKit\n"),
                directory("etc/init.d"),
                file("etc/init.d/000-issue", SH + "cat /etc/issue\n", 0o755),
            ]
        ],
    )
    hello = ImageSpec(
        "example.org/demo/hello:1",
        [[directory("bin"), file("bin/hello", SH + 'echo "$@"\n', 0o755)]],
        cmd=["/bin/hello"],
    )
    web = ImageSpec(
        "example.org/demo/web:1",
        [
            [directory("bin"), file("bin/httpd", SH + "exec httpd -f -h /etc/web\n", 0o755)],
            [directory("var"), directory("var/www")],
        ],
        entrypoint=["/bin/httpd"],
        labels={"org.mobyproject.config": '{"net": "host", "capabilities": ["CAP_NET_BIND_SERVICE"]}'},
    )
    return [init, hello, web]


if __name__ == "__main__":
    write_layout_tar(Path(sys.argv[1]), demo_images())
