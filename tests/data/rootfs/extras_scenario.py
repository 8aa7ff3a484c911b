"""Images and YAMLs for the ``--input-tar`` and ``format: oci`` volume goldens (see regenerate-extras.sh).

Run as a script to write ``images.tar`` and the YAMLs into the current directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imagefactory import ImageSpec, directory, file, symlink, write_layout_tar


def specs() -> list[ImageSpec]:
    lib = "docker.io/library/"
    return [
        ImageSpec(lib + "xkernel:1", [[file("kernel", "KERNEL-BYTES"), file("other", "ignored")]]),
        ImageSpec(lib + "xinit:1", [[directory("etc"), file("etc/init-a", "a\n"), directory("lib/apk/db")]]),
        ImageSpec(lib + "xinit2:1", [[directory("bin"), file("bin/tool", "#!/bin/sh\n", 0o755)]]),
        ImageSpec(lib + "xinit3:1", [[directory("etc"), file("etc/init-c", "c\n")]]),
        ImageSpec(lib + "xsvc:1", [[directory("bin"), file("bin/svc", "svc\n", 0o755)]], cmd=["/bin/svc"]),
        ImageSpec(lib + "xsvc2:1", [[directory("usr"), symlink("usr/svc2", "/bin/svc")]], cmd=["/usr/svc2"]),
        ImageSpec(lib + "xvol:1", [[directory("data"), file("data/v", "volume\n")]]),
        # a multi-platform image for the OCI volumes: amd64 and arm64 (two layers on amd64)
        ImageSpec(lib + "xoci:1", [[file("amd", "amd64\n")], [file("more", "layer 2\n")]], cmd=["/amd"]),
        ImageSpec(lib + "xoci:1", [[file("arm", "arm64\n")]], cmd=["/arm"], arch="arm64"),
    ]


def write_images(path: Path, *, without: tuple[str, ...] = ()) -> None:
    """Every image (but those named in ``without``) as an index (one child per platform)."""
    write_layout_tar(path, [s for s in specs() if s.name not in without], multiarch=True)


_COMMON = """\
kernel:
  image: xkernel:1
  cmdline: "console=ttyS0"
  tar: none
"""

#: The first build of the ``--input-tar`` pair.
INPUT_TAR_OLD = (
    _COMMON
    + """\
init:
  - xinit:1
  - xinit2:1
volumes:
  - name: vola
    image: xvol:1
  - name: volb
onboot:
  - name: first
    image: xsvc:1
  - name: second
    image: xsvc:1
    command: ["/bin/svc", "old"]
services:
  - name: svc
    image: xsvc2:1
  - name: gone
    image: xsvc:1
  - name: last
    image: xsvc:1
    readonly: true
files:
  - path: etc/linuxkit-config
    metadata: yaml
  - path: etc/motd
    contents: "old"
"""
)

#: The second build: one more init image, ``onboot[1]`` changed, ``services[1]`` removed (so
#: ``services[2]`` moves and is rebuilt), a file changed.
INPUT_TAR_NEW = (
    _COMMON
    + """\
init:
  - xinit:1
  - xinit2:1
  - xinit3:1
volumes:
  - name: vola
    image: xvol:1
  - name: volb
onboot:
  - name: first
    image: xsvc:1
  - name: second
    image: xsvc:1
    command: ["/bin/svc", "new"]
services:
  - name: svc
    image: xsvc2:1
  - name: last
    image: xsvc:1
    readonly: true
files:
  - path: etc/linuxkit-config
    metadata: yaml
  - path: etc/motd
    contents: "new"
"""
)

#: Volumes in the OCI layout format: all platforms, one platform, and one next to a plain volume.
OCI_VOLUMES = (
    _COMMON
    + """\
init:
  - xinit:1
volumes:
  - name: all
    image: xoci:1
    format: oci
  - name: arm
    image: xoci:1
    format: oci
    platforms:
      - linux/arm64
  - name: plain
    image: xvol:1
    format: filesystem
services:
  - name: svc
    image: xsvc:1
    binds:
      - all:/all
"""
)


if __name__ == "__main__":
    write_images(Path("images.tar"))
    Path("old.yml").write_text(INPUT_TAR_OLD)
    Path("new.yml").write_text(INPUT_TAR_NEW)
    Path("oci.yml").write_text(OCI_VOLUMES)
