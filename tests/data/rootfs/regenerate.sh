#!/bin/sh
# Rebuild the golden rootfs tars with an upstream linuxkit binary (see README.md).
set -eu
LINUXKIT=${LINUXKIT:-linuxkit}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PYTHONPATH="$ROOT/tests/unit" "$ROOT/.venv/bin/python" -c "
import rootfs_scenario as s, rootfs_fakes as f
open('images.tar', 'wb').write(f.oci_layout_tar(s.IMAGES))
open('test.yml', 'w').write(s.YAML)
"
echo "source file" > src.txt
"$LINUXKIT" --cache cache cache import images.tar
"$LINUXKIT" --cache cache build --format tar --no-sbom --o a.tar test.yml
"$LINUXKIT" --cache cache build --format docker --no-sbom --o b.tar test.yml
"$LINUXKIT" --cache cache build --format tar --decompress-kernel --no-sbom --o c.tar test.yml
gzip -9n -c a.tar > "$HERE/upstream-tar.tar.gz"
gzip -9n -c b.tar > "$HERE/upstream-docker.tar.gz"
gzip -9n -c c.tar > "$HERE/upstream-tar-decompress-kernel.tar.gz"
