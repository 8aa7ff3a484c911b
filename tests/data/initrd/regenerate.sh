#!/bin/sh
# Rebuild the golden initrd data with an upstream linuxkit binary (see README.md).
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
mkdir out dk  # upstream does not create --dir
"$LINUXKIT" --cache cache cache import images.tar
"$LINUXKIT" --cache cache build --format kernel+initrd --no-sbom --dir out --name test test.yml
"$LINUXKIT" --cache cache build --format tar-kernel-initrd --no-sbom --dir out --name test test.yml
"$LINUXKIT" --cache cache build --format kernel+initrd --decompress-kernel --no-sbom --dir dk --name test test.yml
# initrd.img = ucode.cpio (uncompressed) + gzip(cpio); keep the two parts apart, the cpio decompressed.
UCODE=$(tar -xOf out/test-initrd.tar ucode.cpio | wc -c)
head -c "$UCODE" out/test-initrd.img > ucode.bin
tail -c +"$((UCODE + 1))" out/test-initrd.img | gzip -dc > initrd.cpio
tar -xOf out/test-initrd.tar initrd.img | gzip -dc | cmp - initrd.cpio
gzip -9n -c initrd.cpio > "$HERE/upstream-initrd.cpio.gz"
cp ucode.bin "$HERE/upstream-ucode.bin"
cp out/test-kernel "$HERE/upstream-kernel"
cp out/test-cmdline "$HERE/upstream-cmdline"
gzip -9n -c dk/test-kernel > "$HERE/upstream-kernel-decompressed.gz"
# The whole tar-kernel-initrd tar (its initrd.img is pgzip output: compared decompressed).
gzip -9n -c out/test-initrd.tar > "$HERE/upstream-initrd.tar.gz"
