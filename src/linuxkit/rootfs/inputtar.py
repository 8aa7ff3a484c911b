"""``build --input-tar``: copy the unchanged parts of a previous build's tar instead of rebuilding them.

Upstream's rules (``moby/build/build.go Build``), reproduced as they are:

* Only a config with a ``metadata`` file can reuse anything: the previous config is read from that
  path (the last such file) in the input tar. Without one, the input tar is not even opened.
* ``kernel`` and ``init[i]`` are copied when the old reference at the same place is the same;
  ``onboot``/``onshutdown``/``services[i]`` when the whole entry is the same (images compared as
  full references, the rest as go-yaml renders it).
* ``volumes[i]`` counts as unchanged when its ``image`` string is the same, but upstream then looks
  for entries marked ``volumes[i]`` with that raw string while it marks volume entries
  ``volume[i]``: such a volume is left out of the new tar entirely. We do the same, so that the
  bytes match, and warn loudly (docs/compatibility.md).
* A copied part is every entry whose ``LINUXKIT.source``/``LINUXKIT.location`` PAX records equal
  the reference and the place, in input-tar order, headers and data as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .. import log
from ..config import schema
from ..config.dump import to_go
from ..config.load import parse_config
from ..errors import UserError
from ..gocompat.yaml import marshal_yaml
from ..oci import reference
from ..tar.header import PAX_LOCATION, PAX_SOURCE
from ..tar.reader import read_entries
from ..tar.writer import TarSink, copy_data

#: A metadata file larger than this is not a config.
MAX_CONFIG_SIZE = 16 << 20


def metadata_path(moby: schema.Moby) -> str:
    """Where the config records itself in the tar (the last ``metadata`` file), ``""`` when nowhere."""
    found = ""
    for f in moby.files or []:
        if f.metadata:
            path = f.path or ""
            found = path[1:] if path.startswith("/") else path
    return found


def _full(ref: str) -> str:
    return str(reference.parse(ref))


def same_image(new: schema.Image, old: schema.Image) -> bool:
    """Upstream's ``Image.Equal``: both as go-yaml renders them, image names expanded."""

    def rendered(image: schema.Image) -> bytes:
        expanded = schema.replace(image, image=_full(image.image))
        return marshal_yaml(to_go(schema.Moby(onboot=[expanded])), v3=True)

    return rendered(new) == rendered(old)


def reuse_plan(new: schema.Moby, old: schema.Moby) -> dict[str, str]:
    """Place (``kernel``, ``init[0]``, ``volumes[1]``, ``services[2]``...) → the source to copy it from."""
    plan: dict[str, str] = {}
    new_kernel = new.kernel.image if new.kernel else None
    old_kernel = old.kernel.image if old.kernel else None
    if new_kernel and old_kernel and _full(new_kernel) == _full(old_kernel):
        plan["kernel"] = _full(new_kernel)
    old_init = old.init or []
    for i, ref in enumerate(new.init or []):
        if i < len(old_init) and _full(old_init[i]) == _full(ref):
            plan[f"init[{i}]"] = _full(ref)
    old_volumes = old.volumes or []
    for i, vol in enumerate(new.volumes or []):
        if i < len(old_volumes) and (old_volumes[i].image or "") == (vol.image or ""):
            plan[f"volumes[{i}]"] = vol.image or ""
    for section in ("onboot", "onshutdown", "services"):
        olds: Sequence[schema.Image] = getattr(old, section) or []
        for i, image in enumerate(getattr(new, section) or []):
            if i < len(olds) and same_image(image, olds[i]):
                plan[f"{section}[{i}]"] = _full(image.image)
    return plan


def read_old_config(path: Path, location: str) -> schema.Moby | None:
    """The config stored at ``location`` in the tar ``path``; ``None`` when the tar has no such file."""
    with _open(path) as fh:
        for entry in read_entries(fh):
            name = entry.header.name
            if (name[1:] if name.startswith("/") else name) != location:
                continue
            if entry.header.size > MAX_CONFIG_SIZE:
                raise UserError(f"--input-tar {path}: {location} is too large to be a config")
            data = entry.data.read(entry.header.size)
            _, moby, problems = parse_config(data, f"{path}:{location}")
            if problems or moby is None:
                first = problems[0].message if problems else "empty"
                raise UserError(
                    f"--input-tar {path}: invalid config in {location}: {first}",
                    hint="pass the tar of a previous `linuxkit build` of a config with a metadata file",
                )
            return moby
    return None


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UserError(
            f"cannot open --input-tar {path}: {exc.strerror}",
            hint="pass the tar written by a previous `linuxkit build --format tar`",
        ) from exc


@dataclass
class InputTar:
    """The ``reuse`` hook of the assembler for one previous build's tar."""

    path: Path
    plan: dict[str, str]

    @classmethod
    def load(cls, path: Path, moby: schema.Moby) -> InputTar | None:
        """``None`` when nothing can be reused (no metadata file in the config, or none in the tar)."""
        location = metadata_path(moby)
        if not location:
            log.debug(f"--input-tar: the config has no metadata file, so {path} is not used")
            return None
        old = read_old_config(path, location)
        if old is None:
            log.debug(f"--input-tar: {path} has no {location}; building everything")
            return None
        return cls(path, reuse_plan(moby, old))

    def reused_places(self) -> set[str]:
        return set(self.plan)

    def __call__(self, location: str, source: str, sink: TarSink) -> bool:
        """Copy the part at ``location`` when the plan says it is unchanged; False otherwise."""
        planned = self.plan.get(location)
        if planned is None or planned != source:
            return False
        if location.startswith("volumes["):
            log.warn(
                f"{location} is unchanged, so it is left out of the output, as upstream LinuxKit does; "
                "build without --input-tar to keep it"
            )
        log.info(f"Copy {location} files from input tar: {source}")
        copy_part(self.path, source, location, sink)
        return True


def copy_part(path: Path, source: str, location: str, sink: TarSink) -> None:
    """Stream every entry of ``path`` marked with ``source`` and ``location`` to ``sink``."""
    with _open(path) as fh:
        for entry in read_entries(fh):
            pax = entry.header.pax
            # Go's map lookup: a missing record reads as "".
            if not pax or pax.get(PAX_SOURCE, "") != source or pax.get(PAX_LOCATION, "") != location:
                continue
            hdr = entry.header.copy(want_pax=True)
            sink.write_header(hdr)
            if hdr.has_data:
                copy_data(sink, entry.data, hdr.size)
