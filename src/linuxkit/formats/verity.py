"""``build --verity``: a dm-verity hash tree appended to a root image, and the kernel command line
that names it.

The image is padded with zeros to a whole 4 KiB block, then Debian's ``veritysetup format`` (the
reference implementation, no root needed on a file) writes its superblock and hash tree right after
the data, in the same file: one file, so ``run qemu`` and a real machine see one disk. Salt and UUID
are derived from the image's bytes, so the same image gives the same tree and root hash. The root
hash that ``veritysetup`` prints is checked here against the tree it wrote (the hash of the salt and
the top hash block), so a misparsed or changed output is an error, never a wrong command line.

The command line gets ``linuxkit.verity=ROOTHASH`` with the data size and salt beside it
(:func:`cmdline_args`); the root loader (:mod:`.rootloader`) builds the dm table from them
(:func:`dm_table` is the same table, for the documentation and the tests).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from .. import runner
from ..errors import BuildError, UserError

#: Data and hash block size (bytes): the page size the kernel's dm-verity reads with.
BLOCK = 4096
#: The hash the tree is made with.
ALGORITHM = "sha256"
#: Formats whose root image can carry a hash tree (read by the same root loader). Not ``kernel+iso``: the
#: verity device has 4 KiB sectors and the kernel's ISO 9660 driver mounts 2 KiB ones only.
VERITY_FORMATS = ("kernel+squashfs", "kernel+erofs")
#: May come with one of those under ``--verity``: its UKI is then the root image's boot chain
#: (kernel, root loader, command line with the root hash; :mod:`.verityuki`), written after it.
VERITY_UKI = "uki"
#: Kernel command line keys the root loader reads.
ROOT_HASH_KEY = "linuxkit.verity"
BLOCKS_KEY = "linuxkit.verity_blocks"
SALT_KEY = "linuxkit.verity_salt"


class _HasName(Protocol):
    @property
    def name(self) -> str: ...


_Named = TypeVar("_Named", bound=_HasName)
_HEX = re.compile(r"[0-9a-f]+")
_ROOT_HASH_LINE = re.compile(rb"^Root hash:\s*([0-9a-f]{64})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class VerityRoot:
    """What the root loader needs to open a root image's dm-verity device."""

    data_blocks: int  # 4 KiB blocks of the image before its hash area
    salt: str  # hex
    root_hash: str  # hex

    @property
    def hash_start(self) -> int:
        """The first block of the hash tree: the superblock takes the first block of the hash area."""
        return self.data_blocks + 1


def cmdline_args(root: VerityRoot) -> list[str]:
    """The kernel command line arguments naming ``root``."""
    return [f"{ROOT_HASH_KEY}={root.root_hash}", f"{BLOCKS_KEY}={root.data_blocks}", f"{SALT_KEY}={root.salt}"]


def parse_cmdline(cmdline: str) -> VerityRoot | None:
    """The verity root a kernel command line names, ``None`` when it names none; as the root loader
    reads it (the last of each key wins), with its checks (a malformed one is an error)."""
    values: dict[str, str] = {}
    for arg in cmdline.split():
        key, sep, value = arg.partition("=")
        if sep and key in (ROOT_HASH_KEY, BLOCKS_KEY, SALT_KEY):
            values[key] = value
    if ROOT_HASH_KEY not in values:
        return None
    root_hash, blocks, salt = values[ROOT_HASH_KEY], values.get(BLOCKS_KEY, ""), values.get(SALT_KEY, "")
    if len(root_hash) != 64 or not _HEX.fullmatch(root_hash) or not blocks.isdigit() or not _HEX.fullmatch(salt):
        raise UserError(
            f"malformed dm-verity arguments on the kernel command line: {cmdline.strip()!r}",
            hint=f"{ROOT_HASH_KEY}= takes 64 hex digits, {BLOCKS_KEY}= a block count, {SALT_KEY}= hex",
        )
    return VerityRoot(int(blocks), salt, root_hash)


def with_verity(cmdline: str, root: VerityRoot) -> str:
    """``cmdline`` (the image's, maybe empty) with the verity arguments of ``root`` instead of any it had."""
    keys = (ROOT_HASH_KEY, BLOCKS_KEY, SALT_KEY)
    kept = [arg for arg in cmdline.split() if arg.partition("=")[0] not in keys]
    return " ".join([*kept, *cmdline_args(root)])


def dm_table(root: VerityRoot, device: str) -> str:
    """The device-mapper table of the verity device over ``device`` (data and hash tree both on it)."""
    sectors = root.data_blocks * (BLOCK // 512)
    return (
        f"0 {sectors} verity 1 {device} {device} {BLOCK} {BLOCK} {root.data_blocks} {root.hash_start} "
        f"{ALGORITHM} {root.root_hash} {root.salt}"
    )


def derived_salt_and_uuid(digest: bytes) -> tuple[str, str]:
    """The salt (hex, 32 bytes) and superblock UUID of an image whose sha256 is ``digest``."""
    salt = hashlib.sha256(b"linuxkit-verity-salt\0" + digest).hexdigest()
    fixed = uuid.UUID(bytes=hashlib.sha256(b"linuxkit-verity-uuid\0" + digest).digest()[:16], version=4)
    return salt, str(fixed)


def tree_root_hash(top_block: bytes, salt: str) -> str:
    """The root hash of a tree whose top hash block is ``top_block`` (format 1: salt first)."""
    return hashlib.sha256(bytes.fromhex(salt) + top_block).hexdigest()


def append_hash_tree(image: Path) -> VerityRoot:
    """Pad ``image`` to whole blocks and append its dm-verity superblock and hash tree."""
    size = image.stat().st_size
    if size == 0:
        raise BuildError(f"{image.name} is empty: no hash tree to make")
    blocks = -(-size // BLOCK)
    os.truncate(image, blocks * BLOCK)
    with open(image, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").digest()
    salt, fixed_uuid = derived_salt_and_uuid(digest)
    proc = runner.run(
        [
            *("veritysetup", "format", "--format=1", f"--hash={ALGORITHM}"),
            *(f"--data-block-size={BLOCK}", f"--hash-block-size={BLOCK}", f"--data-blocks={blocks}"),
            *(f"--hash-offset={blocks * BLOCK}", f"--salt={salt}", f"--uuid={fixed_uuid}"),
            *(image, image),
        ],
        capture=True,
    )
    found = _ROOT_HASH_LINE.search(proc.stdout)
    if found is None:
        raise BuildError("veritysetup format printed no root hash", hint=proc.stdout.decode(errors="replace")[-500:])
    root = VerityRoot(blocks, salt, found.group(1).decode())
    with open(image, "rb") as fh:
        fh.seek(root.hash_start * BLOCK)
        top = fh.read(BLOCK)
    if len(top) != BLOCK or tree_root_hash(top, salt) != root.root_hash:
        raise BuildError(f"the hash tree veritysetup wrote into {image.name} does not give the root hash it printed")
    return root


def check_formats(formats: list[str]) -> None:
    """``--verity`` needs one root-image format (each writes its own root hash into ``NAME-cmdline``),
    optionally with ``uki`` (its boot chain as one EFI binary)."""
    other = [f for f in formats if f not in (*VERITY_FORMATS, VERITY_UKI)]
    roots = [f for f in formats if f in VERITY_FORMATS]
    if other:
        raise UserError(
            f"--verity works with the root-image formats only, not {', '.join(other)}",
            hint="build one of "
            + ", ".join(VERITY_FORMATS)
            + " with --verity, and uki for its signed boot chain (the other EFI formats hold the root in the "
            "UKI's initramfs: --sign-key signs all of it)",
        )
    if len(roots) != 1:
        raise UserError(
            "--verity builds one root-image format at a time: each has its own root hash in NAME-cmdline",
            hint="build " + " and ".join(roots) + " in separate builds (or with different --name)"
            if roots
            else "add -f kernel+squashfs (or kernel+erofs): the uki of --verity boots that root image",
        )


def root_image_first(formats: list[_Named]) -> list[_Named]:
    """``formats`` with the root-image one first: ``uki`` reads what it wrote."""
    return sorted(formats, key=lambda f: f.name not in VERITY_FORMATS)
