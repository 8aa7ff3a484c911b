"""examples/swap.yml booted as it is (its 1 GiB encrypted swap file on a blank 4 GB disk) under qemu (TCG), with
tests/data/guest/swap-check.yml: the swap is active on the dm-crypt device and the kernel swaps to it when a
memory cgroup's tmpfs holds more than the cgroup may keep in memory."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_guest_boot import boot_until_exit, lk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_swap_example_swaps_to_its_encrypted_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = (ROOT / "examples" / "swap.yml", ROOT / "tests" / "data" / "guest" / "swap-check.yml")
    lk(cache, "build", "--name", "swap", "--dir", tmp_path, *files)
    start = time.monotonic()
    console = boot_until_exit(
        cache, tmp_path / "swap", "--mem", "512", "--disk", f"file={tmp_path / 'disk.img'},size=4G", timeout=600
    )
    print(f"swap.yml: booted, checked and powered off in {time.monotonic() - start:.0f}s")
    tail = console[-4000:]
    assert "SWAP-CHECK-DONE" in console, tail
    # the example's steps: format and mount the blank disk, a 1 GiB file there mapped through dm-crypt
    assert "EXT4-fs (vda1): mounted filesystem" in console, tail
    assert "SWAP-LOG swap: enabled /dev/mapper/swapfile (1G)" in console, tail
    assert re.search(r"SWAP-CHECK /\S*mapper/swapfile\s+partition\s+1048572\b", console), tail
    total = re.search(r"SWAP-MEMINFO SwapTotal:\s+(\d+) kB", console)
    free = re.search(r"SWAP-MEMINFO SwapFree:\s+(\d+) kB", console)
    assert total and free, tail
    swapped = int(total.group(1)) - int(free.group(1))
    print(f"swapped out: {swapped // 1024} MB")
    assert int(total.group(1)) == 1048572 and swapped > 32 * 1024, tail
