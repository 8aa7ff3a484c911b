#!/bin/sh
# Rebuild the --input-tar and format: oci volume goldens (upstream-input-tar-*, upstream-oci-volumes)
# with an upstream linuxkit binary, from the images and YAMLs of extras_scenario.py.
set -eu
LINUXKIT=${LINUXKIT:-linuxkit}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$ROOT/.venv/bin/python" "$HERE/extras_scenario.py"
"$LINUXKIT" --cache cache cache import images.tar
"$LINUXKIT" --cache cache build --format tar --no-sbom --o oci.tar oci.yml
"$LINUXKIT" --cache cache build --format tar --no-sbom --o old.tar old.yml
"$LINUXKIT" --cache cache build --format tar --no-sbom --input-tar old.tar --o new.tar new.yml
# the main scenario again, with the main golden as input tar and one service changed
mkdir main && cd main
PYTHONPATH="$ROOT/tests/unit" "$ROOT/.venv/bin/python" -c "
import rootfs_scenario as s, rootfs_fakes as f
open('images.tar', 'wb').write(f.oci_layout_tar(s.IMAGES))
open('test.yml', 'w').write(s.YAML.replace('    uid: first', '    uid: second'))
"
echo "source file" > src.txt
gzip -dc "$HERE/upstream-tar.tar.gz" > in.tar
"$LINUXKIT" --cache cache cache import images.tar
"$LINUXKIT" --cache cache build --format tar --no-sbom --input-tar in.tar --o main.tar test.yml
cd ..
gzip -9n -c oci.tar > "$HERE/upstream-oci-volumes.tar.gz"
gzip -9n -c old.tar > "$HERE/upstream-input-tar-old.tar.gz"
gzip -9n -c new.tar > "$HERE/upstream-input-tar-new.tar.gz"
gzip -9n -c main/main.tar > "$HERE/upstream-input-tar-main.tar.gz"
