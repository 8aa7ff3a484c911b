"""A package's image tag, computed exactly as upstream ``linuxkit pkg show-tag`` does.

* hash = the git tree hash of the package directory at ``HEAD`` (``git ls-tree --full-tree``; the
  commit's tree when the directory is the repository root);
* with ``extra-sources``: ``sha1(hash + tree hash of each source)``;
* dirty (``git diff HEAD -- dir`` differs, or untracked files under it): ``<hash>-dirty-<7 hex>``
  where the hex is the SHA-256 of the contents of every tracked then untracked regular file under
  the directory, in ``git ls-files`` order (deleted files, directories and symlinks skipped);
* not in git: no hash, so the default template renders ``""`` and the tag is ``latest``;
* ``--hash`` replaces the computed hash (and its dirty suffix); ``--dev`` uses org ``$USER`` and
  hash ``dev``; the tag template (``{{.Hash}}`` by default) is applied last.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from typing import NamedTuple

from .. import runner
from ..errors import BuildError, UserError
from ..oci import reference
from .buildyml import BUILD_YML, DEFAULT_TAG, PkgInfo, read_build_yml

_TREE_LINE = re.compile(r"^[0-7]{6} [^ ]+ ([0-9a-f]{40})\t.+\n$")
_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)


class TagOptions(NamedTuple):
    """The ``pkg`` flags that change a tag (``--build-yml``, ``--hash``, ``--hash-commit``…)."""

    build_yml: str = BUILD_YML
    hash: str = ""
    hash_commit: str = "HEAD"
    hash_path: str = ""
    force_dirty: bool = False
    dev: bool = False
    org: str | None = None
    tag_template: str = ""


class PackageTag(NamedTuple):
    """The result: ``org/image:tag``, its canonical ``docker.io/…`` form and how it was made."""

    org: str
    image: str
    tag: str
    hash: str
    dirty: bool
    info: PkgInfo

    @property
    def name(self) -> str:
        return f"{self.org}/{self.image}:{self.tag or 'latest'}"

    @property
    def canonical(self) -> str:
        return reference.expand(self.name)


class Git:
    """``git -C <dir> …`` through the project runner."""

    def __init__(self, directory: str) -> None:
        self.dir = directory

    def _run(self, *args: str) -> tuple[int, str]:
        proc = runner.run(["git", "-C", self.dir, *args], check=False, capture=True)
        return proc.returncode, proc.stdout.decode(errors="surrogateescape")

    def _out(self, *args: str) -> str:
        code, out = self._run(*args)
        if code != 0:
            raise BuildError(f"git {' '.join(args)} failed in {self.dir} (exit {code})")
        return out

    def is_work_tree(self) -> bool:
        code, out = self._run("rev-parse", "--is-inside-work-tree")
        if code != 0:
            return False
        if out.strip() != "true":
            raise BuildError(f"unexpected output from git rev-parse --is-inside-work-tree: {out.strip()}")
        return True

    def tree_hash(self, pkg: str, commit: str) -> str:
        if self._out("rev-parse", "--prefix", pkg, "--show-toplevel").strip() == pkg:
            return self._out("show", "--format=%T", "-s", commit).strip()
        out = self._out("ls-tree", "--full-tree", commit, "--", pkg)
        if not out:
            raise UserError(f"package {pkg} is not in git", hint="git add the package directory")
        match = _TREE_LINE.match(out)
        if match is None:
            raise BuildError(f"unable to parse ls-tree output: {out!r}")
        return match.group(1)

    def is_dirty(self, pkg: str, commit: str) -> bool:
        if commit != "HEAD":
            return False
        code, _ = self._run("diff", "--no-ext-diff", "--exit-code", "--quiet", commit, "--", pkg)
        if code != 0:
            return True
        code, _ = self._run("ls-files", "--exclude-standard", "--others", "--error-unmatch", "--", pkg)
        return code == 0

    def lines(self, *args: str) -> list[str]:
        """Non-empty output lines of ``git ARGS`` (none when it fails)."""
        code, out = self._run(*args)
        return [line.strip() for line in out.splitlines() if line.strip()] if code == 0 else []

    def content_hash(self) -> str:
        tracked = self._out("ls-files")
        untracked = self._out("ls-files", "--exclude-standard", "--others")
        digest = hashlib.sha256()
        for line in "\n".join([tracked, untracked]).strip().split("\n"):
            name = os.path.join(self.dir, line.removesuffix("\r")) if line else self.dir
            try:
                st = os.lstat(name)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                continue
            try:
                with open(name, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)
            except OSError:
                continue
        return digest.hexdigest()


def render_template(template: str, hash_: str) -> str:
    """Go ``text/template`` for the one thing a tag template may use: ``{{.Hash}}`` (with ``{{-``/``-}}``)."""
    out = ""
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if match.group(2) != ".Hash":
            raise UserError(
                f"invalid tag template {template!r}: only {{{{.Hash}}}} is supported",
                hint="e.g. --tag 'v1-{{.Hash}}'",
            )
        out += text + hash_
        trim_next = bool(match.group(3))
        pos = match.end()
    rest = template[pos:]
    if "{{" in rest:
        raise UserError(f"invalid tag template {template!r}: unclosed action")
    return out + (rest.lstrip() if trim_next else rest)


def package_tag(pkg_dir: str, opts: TagOptions | None = None) -> PackageTag:
    """Compute the tag of the package in ``pkg_dir`` (``pkg show-tag`` semantics)."""
    opts = opts or TagOptions()
    pkg_path = os.path.abspath(pkg_dir)
    hash_path = pkg_path
    if opts.hash_path:
        hash_path = os.path.abspath(opts.hash_path)
        if not pkg_path.startswith(hash_path):
            raise UserError("hash path is not a prefix of the package path")
    info = read_build_yml(pkg_path, opts.build_yml)
    pkg_hash = opts.hash
    org = info.org
    if opts.dev:
        org = os.environ.get("USER", "")
        pkg_hash = pkg_hash or "dev"
    if opts.org is not None:
        org = opts.org

    src_hashes = ""
    sources: list[str] = []
    for source in info.extra_sources:
        src = os.path.normpath(source.split(":")[0])
        if not os.path.isabs(src):
            src = os.path.join(pkg_path, src)
        git = Git(src)
        if not git.is_work_tree():
            raise UserError(f"source {src} not in a git repository", hint="extra-sources must be tracked by git")
        src_hashes += git.tree_hash(src, opts.hash_commit)
        sources.append(src)

    dirty = False
    git = Git(pkg_path)
    if git.is_work_tree():
        # an uncommitted change in an extra source makes the package dirty too (upstream looks at the
        # package directory only, so a build could reuse an image made from the committed files)
        dirty_sources = [src for src in sources if Git(src).is_dirty(src, opts.hash_commit)]
        dirty = opts.force_dirty or git.is_dirty(hash_path, opts.hash_commit) or bool(dirty_sources)
        if not pkg_hash:
            pkg_hash = git.tree_hash(hash_path, opts.hash_commit)
            if src_hashes:
                pkg_hash = hashlib.sha1((pkg_hash + src_hashes).encode()).hexdigest()
            if dirty:
                content = git.content_hash()
                if dirty_sources:
                    joined = "".join([content, *(Git(s).content_hash() for s in sources)])
                    content = hashlib.sha256(joined.encode()).hexdigest()
                pkg_hash += "-dirty-" + content[:7]
    template = opts.tag_template or info.tag or DEFAULT_TAG
    tag = render_template(template, pkg_hash)
    return PackageTag(org, info.image, tag, pkg_hash, dirty, info)
