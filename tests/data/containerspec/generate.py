"""Regenerate the expected bundles under cases/*/expected/ by running upstream LinuxKit.

Usage: python tests/data/containerspec/generate.py [/path/to/upstream/linuxkit]   (default /work/upstream/bin/linuxkit)

For every cases/<case>/ it builds a one-layer OCI image for each entry of images.json (the value is
the whole image config JSON; the layer holds only bin/hello), imports them into a fresh cache with
``linuxkit cache import``, runs ``linuxkit build --format tar --no-sbom`` on input.yml and copies
each containers/<section>/<bundle>/{config,runtime}.json of the output into cases/<case>/expected/.
Nothing here is used by the tests themselves; they only read the files it writes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def oci_image_tar(ref: str, config: dict[str, object]) -> bytes:
    raw = _tar([("bin", None, 0o755), ("bin/hello", b"#!/bin/sh\necho hello\n", 0o755)])
    layer = gzip.compress(raw, mtime=0)
    full = {
        "architecture": "amd64",
        "os": "linux",
        **config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha(raw)]},
    }
    cfg = json.dumps(full).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + _sha(cfg),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + _sha(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + _sha(manifest),
        "size": len(manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
    }
    index = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    blobs = [("blobs/sha256/" + _sha(b), b, 0o644) for b in (layer, cfg, manifest)]
    return _tar(
        [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644),
            ("index.json", index, 0o644),
            ("blobs", None, 0o755),
            ("blobs/sha256", None, 0o755),
            *blobs,
        ]
    )


def generate(case: Path, linuxkit: str) -> None:
    images = json.loads((case / "images.json").read_text())
    expected = case / "expected"
    shutil.rmtree(expected, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, (ref, config) in enumerate(images.items()):
            tar_path = work / f"image{i}.tar"
            tar_path.write_bytes(oci_image_tar(ref, config))
            subprocess.run([linuxkit, "--cache", str(work / "cache"), "cache", "import", str(tar_path)], check=True)
        out = work / "out.tar"
        subprocess.run(
            [
                linuxkit,
                "--cache",
                str(work / "cache"),
                "build",
                "--format",
                "tar",
                "--no-sbom",
                "--o",
                str(out),
                str(case / "input.yml"),
            ],
            check=True,
        )
        with tarfile.open(out) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if len(parts) == 4 and parts[0] == "containers" and parts[3] in ("config.json", "runtime.json"):
                    target = expected / parts[1] / parts[2] / parts[3]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = tar.extractfile(member)
                    assert data is not None
                    target.write_bytes(data.read())
    print(f"{case.name}: ok")


def main() -> None:
    linuxkit = sys.argv[1] if len(sys.argv) > 1 else "/work/upstream/bin/linuxkit"
    for case in sorted((HERE / "cases").iterdir()):
        if (case / "input.yml").exists():
            generate(case, linuxkit)


if __name__ == "__main__":
    main()
