"""Dockerfile packages, built by an existing engine without a Docker daemon: ``buildah``.

The build runs with private storage in a temporary directory (``--root``/``--runroot``, vfs driver)
and ``--timestamp`` fixed so rebuilds give the same layers. ``RUN`` steps have no network (upstream's
default) through runc isolation with ``--network none``; ``network: true`` in build.yml uses chroot
isolation with the host's network (buildah's default runtime, crun, fails on hybrid cgroup hosts).
``FROM`` images that our cache holds are handed to buildah from the cache (exported as OCI archives
and tagged in its private storage), so a package built on top of another of our packages needs no
registry. The result is pushed by buildah into an OCI archive and imported into our cache under ``NAME-<arch>``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import log, runner
from ..arch import host_arch
from ..config.dump import image_config_label
from ..errors import BuildError, UserError
from ..oci import reference
from ..oci.archive import import_archive, write_oci_tar
from ..oci.descriptor import Descriptor
from ..oci.image import Platform
from .tag import PackageTag

if TYPE_CHECKING:
    from .pkgbuild import PkgBuildOptions

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)


def from_images(dockerfile: str) -> list[str]:
    """The base images a Dockerfile names (stage names and ``scratch`` left out)."""
    stages: set[str] = set()
    out: list[str] = []
    for line in dockerfile.splitlines():
        match = _FROM.match(line)
        if not match:
            continue
        image = match.group(1)
        alias = re.search(r"\s+AS\s+(\S+)\s*$", line, re.IGNORECASE)
        if image.lower() != "scratch" and image not in stages and "$" not in image and image not in out:
            out.append(image)
        if alias:
            stages.add(alias.group(1))
    return out


_RUN = re.compile(r"^\s*RUN(?:\s|\\)", re.IGNORECASE | re.MULTILINE)
#: where the kernel lists the registered binfmt_misc handlers
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
#: Go architecture → the name qemu-user's binfmt handler has (Debian's qemu-user-static / binfmt-support)
_QEMU_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "ppc64le": "ppc64le"}


def has_run(dockerfile: str) -> bool:
    """Whether a Dockerfile runs commands (a ``RUN`` step): only those need the target's CPU."""
    return _RUN.search(dockerfile) is not None


def emulator_registered(arch: str, binfmt_dir: Path = BINFMT_DIR) -> bool:
    """Whether binfmt_misc runs ``arch``'s programs through qemu-user (a registered, enabled handler)."""
    try:
        return (binfmt_dir / f"qemu-{_QEMU_ARCH.get(arch, arch)}").read_text().splitlines()[:1] == ["enabled"]
    except OSError:
        return False


def check_emulation(name: str, arch: str, binfmt_dir: Path = BINFMT_DIR) -> None:
    """A Dockerfile with RUN steps built for another architecture runs them under qemu-user: refuse
    clearly when no handler is registered (COPY/ADD-only Dockerfiles and Debian packages need none)."""
    if emulator_registered(arch, binfmt_dir):
        return
    handler = binfmt_dir / f"qemu-{_QEMU_ARCH.get(arch, arch)}"
    raise UserError(
        f"the Dockerfile package {name} has RUN steps: building it for {arch} on a {host_arch()} host runs them"
        f" under emulation, and no binfmt_misc handler runs {arch} programs (no {handler})",
        hint="install the emulators: apt-get install qemu-user-static binfmt-support; or build it on an "
        f"{arch} machine, or describe the image with a debian: section (no emulation needed)",
    )


def build_dockerfile_package(tag: PackageTag, directory: Path, platform: Platform, opts: PkgBuildOptions) -> Descriptor:
    dockerfile = (directory / tag.info.dockerfile).resolve()
    if not dockerfile.is_relative_to(directory):
        raise UserError(f"{tag.info.dockerfile}: the Dockerfile must be inside the package directory")
    if not dockerfile.is_file():
        raise UserError(
            f"{directory}: neither a debian: section in build.yml nor a {tag.info.dockerfile}",
            hint="describe the image with debian: (see docs/packages.md) or add a Dockerfile",
        )
    if platform.architecture != host_arch() and has_run(dockerfile.read_text()):
        check_emulation(tag.name, platform.architecture)
    buildah = runner.find_tool("buildah")
    arch = platform.architecture
    with tempfile.TemporaryDirectory(prefix="linuxkit-buildah-") as tmp, log.step(f"Building {tag.canonical} ({arch})"):
        work = Path(tmp)
        store = ["--root", str(work / "root"), "--runroot", str(work / "run"), "--storage-driver", "vfs"]
        for ref in from_images(dockerfile.read_text()):
            _provide_base(buildah, store, ref, platform, opts, work)
        local = f"localhost/linuxkit-build:{arch}"
        argv = [
            buildah,
            *store,
            "build",
            # chroot isolation cannot cut the network; without network use runc (crun fails on hybrid cgroups)
            *(["--isolation", "chroot"] if tag.info.network else ["--isolation", "oci", "--runtime", "runc"]),
            *([] if tag.info.network else ["--network", "none"]),
            "--pull-never",
            "--timestamp",
            str(opts.debian.epoch),
            "--layers=false",
            "--platform",
            str(platform),
            "-f",
            str(dockerfile),
            "-t",
            local,
            "--label",
            f"org.opencontainers.image.source={tag.info.gitrepo}",
        ]
        if tag.info.config is not None:
            argv += ["--label", f"org.mobyproject.config={image_config_label(tag.info.config)}"]
        for arg in tag.info.build_args or ():
            argv += ["--build-arg", arg]
        argv.append(str(directory))
        runner.run(argv)
        archive = work / "image.tar"
        runner.run([buildah, *store, "push", local, f"oci-archive:{archive}"])
        with open(archive, "rb") as fh:
            imported = import_archive(opts.cache, fh, source=str(archive))
        if len(imported) != 1:
            raise BuildError(f"buildah produced {len(imported)} images, expected one")
        desc = imported[0].descriptor.with_platform(
            {"architecture": arch, "os": platform.os, **({"variant": platform.variant} if platform.variant else {})}
        )
        opts.cache.writer().tag(f"{tag.canonical}-{arch}", desc)
        shutil.rmtree(work / "root", ignore_errors=True)
    return desc


def _provide_base(
    buildah: str, store: list[str], ref: str, platform: Platform, opts: PkgBuildOptions, work: Path
) -> None:
    """Put ``ref`` from our cache into buildah's private storage under the name the Dockerfile uses."""
    full = reference.expand(ref)
    image = opts.cache.resolve(full, platform)
    if image is None:
        raise UserError(
            f"FROM {ref}: not in the linuxkit cache for {platform}",
            hint=f"build or pull it first: linuxkit cache pull {ref} (or linuxkit pkg build its directory)",
        )
    archive = work / f"base-{len(list(work.glob('base-*.tar')))}.tar"
    with open(archive, "wb") as out:
        write_oci_tar(image, out, full)
    # `buildah pull` prints the image id last
    image_id = runner.output([buildah, *store, "pull", "--quiet", f"oci-archive:{archive}"]).split()[-1]
    for name in {ref, full}:
        runner.run([buildah, *store, "tag", image_id, name], capture=True)
