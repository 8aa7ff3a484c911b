"""A Dockerfile package built for another architecture: only RUN steps need qemu-user (binfmt_misc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.packages import dockerfile


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM scratch\nCOPY a /a\n", False),
        ('FROM base\nADD x /x\nENTRYPOINT ["/x"]\n', False),
        ("FROM base\n# RUN in a comment\nLABEL run=1\n", False),
        ("FROM base\nRUN echo hi\n", True),
        ('FROM base AS b\n  run ["/bin/sh", "-c", "true"]\nFROM scratch\nCOPY --from=b / /\n', True),
        ("FROM base\nRUN \\\n  true\n", True),
        ("FROM base\nRUN\\\n  true\n", True),
        ("FROM base\nRUNNER=1\n", False),
    ],
)
def test_has_run(text: str, expected: bool) -> None:
    assert dockerfile.has_run(text) is expected


def test_emulator_registered_reads_the_handler(tmp_path: Path) -> None:
    assert not dockerfile.emulator_registered("arm64", tmp_path)
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert not dockerfile.emulator_registered("arm64", tmp_path)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert dockerfile.emulator_registered("arm64", tmp_path)
    assert not dockerfile.emulator_registered("riscv64", tmp_path)
    (tmp_path / "qemu-riscv64").write_text("enabled\n")
    assert dockerfile.emulator_registered("riscv64", tmp_path)


def test_missing_emulator_is_a_user_error_naming_the_packages(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        dockerfile.check_emulation("app", "arm64", tmp_path)
    assert "has RUN steps" in str(info.value) and str(tmp_path / "qemu-aarch64") in str(info.value)
    assert "qemu-user-static" in (info.value.hint or "") and "binfmt-support" in (info.value.hint or "")
    (tmp_path / "qemu-aarch64").write_text("enabled\n")
    dockerfile.check_emulation("app", "arm64", tmp_path)
