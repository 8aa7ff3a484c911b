"""InRelease files: signature check with ``gpgv``, the signed text, and the fields we use."""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from .. import runner
from ..errors import BuildError, UserError

_BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIG = "-----BEGIN PGP SIGNATURE-----"
_END_SIG = "-----END PGP SIGNATURE-----"


@dataclass(frozen=True)
class IndexFile:
    path: str  # relative to dists/SUITE, e.g. "main/binary-amd64/Packages.xz"
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The fields of a (verified) Release text that the client needs."""

    fields: dict[str, str]
    files: dict[str, IndexFile]  # SHA256 section by path

    @property
    def suite(self) -> str:
        return self.fields.get("Suite", "")

    @property
    def codename(self) -> str:
        return self.fields.get("Codename", "")

    @property
    def acquire_by_hash(self) -> bool:
        return self.fields.get("Acquire-By-Hash", "no").strip().lower() == "yes"

    @property
    def date(self) -> datetime | None:
        return _parse_date(self.fields.get("Date"))

    @property
    def valid_until(self) -> datetime | None:
        return _parse_date(self.fields.get("Valid-Until"))


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError) as exc:
        raise BuildError(f"InRelease has an invalid date {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_release(text: str) -> Release:
    """Parse the (already verified) text of a Release file."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if key is None:
                raise BuildError("malformed Release file: continuation line before any field")
            fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BuildError(f"malformed Release file line {line[:80]!r}")
        key = name.strip()
        fields[key] = value.strip()
    files = {}
    for entry in fields.get("SHA256", "").splitlines():
        words = entry.split()
        if len(words) == 3:
            digest, size, path = words
            files[path] = IndexFile(path, int(size), digest.lower())
    return Release(fields, files)


def signed_text(clearsigned: str) -> str:
    """The message of a clearsigned document, refusing anything outside the signed envelope.

    Call only after :func:`verify_inrelease` accepted the same bytes: the envelope check here stops text appended
    before or after the signature from being read as signed (what apt checks too).
    """
    lines = clearsigned.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].rstrip() != _BEGIN_SIGNED:
        raise BuildError("InRelease is not a clearsigned document (text before the signed message)")
    i = 1
    while i < len(lines) and lines[i].strip():  # armor headers such as "Hash: SHA256"
        if not lines[i].startswith("Hash:"):
            raise BuildError(f"InRelease has an unexpected armor header {lines[i][:60]!r}")
        i += 1
    i += 1
    body = []
    while i < len(lines) and lines[i].rstrip() != _BEGIN_SIG:
        line = lines[i]
        if line.startswith("-"):
            if not line.startswith("- "):
                raise BuildError(f"InRelease has an unexpected armor line {line[:60]!r}")
            line = line[2:]
        body.append(line)
        i += 1
    if i == len(lines):
        raise BuildError("InRelease has no signature block")
    ends = [n for n in range(i, len(lines)) if lines[n].rstrip() == _END_SIG]
    if len(ends) != 1 or ends[0] != len(lines) - 1:
        raise BuildError("InRelease has text after its signature or several signatures blocks")
    return "\n".join(body) + "\n"


def dearmor_keyring(keyring: Path, cache_dir: Path) -> Path:
    """``keyring`` as a binary keyring gpgv can read: armored (``.asc``) files are decoded into ``cache_dir``."""
    try:
        data = keyring.read_bytes()
    except OSError as exc:
        raise UserError(
            f"cannot read keyring {keyring}: {exc.strerror}",
            hint="install the keyring (apt-get install debian-archive-keyring) or fix Signed-By",
        ) from exc
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return keyring
    binary = bytearray()
    for block in re.findall(rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP", data, re.S):
        head, _, body = block.partition(b"\n\n") if b"\n\n" in block else (b"", b"", block)
        if not body:
            body = head
        payload = b"".join(ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith(b"="))
        binary += base64.b64decode(payload)
    if not binary:
        raise UserError(f"keyring {keyring} holds no public key block", hint="point Signed-By at a keyring file")
    out = cache_dir / "keyrings" / (hashlib.sha256(binary).hexdigest() + ".gpg")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, delete=False) as tmp:
            tmp.write(binary)
        Path(tmp.name).replace(out)
    return out


def verify_inrelease(path: Path, keyring: Path, *, what: str, cache_dir: Path) -> str:
    """Check the signature of InRelease ``path`` with ``gpgv`` and return its signed text.

    The file is read once and the same bytes are checked and parsed. Like apt, accept when at least one signature
    is good (VALIDSIG) and none is bad; a signature by a key that is not in the keyring is ignored. Refuse unsigned
    files.
    """
    readable = dearmor_keyring(keyring, cache_dir)
    data = path.read_bytes()
    proc = runner.run(
        ["gpgv", "--status-fd", "1", "--keyring", readable.resolve()], input=data, check=False, capture=True
    )
    status = [ln.split()[1:] for ln in proc.stdout.decode(errors="replace").splitlines() if ln.startswith("[GNUPG:]")]
    kinds = {s[0] for s in status if s}
    if "BADSIG" in kinds or "VALIDSIG" not in kinds:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BuildError(
            f"{what}: InRelease signature check failed" + (f" ({detail[-1]})" if detail else ""),
            hint=f"the file is not signed by a key in {keyring}; check the mirror and the keyring (Signed-By)",
        )
    try:
        return signed_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BuildError(f"{what}: InRelease is not UTF-8 text") from exc
