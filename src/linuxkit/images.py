"""The images of one build: every reference the config names (with where), found in the cache,
pulled when missing (several at a time, all of them with ``--pull``) or built from their ``@pkg:``
directory, each once; the missing ones reported together, at the lines that name them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import log
from .errors import BuildError, BuildErrors, ConfigError, Diagnostic, LinuxKitError
from .oci import reference
from .oci.image import Platform
from .oci.registry import pull

if TYPE_CHECKING:
    from .config.load import LoadedConfig
    from .oci.cache import Cache
    from .oci.image import ImageSource
    from .oci.registry import RegistryOptions


PackageBuilder = Callable[[str, Platform, str], None]
"""Builds the package in a directory for a platform; the result is also named as the YAML asked (3rd)."""

SignatureCheck = Callable[[str, str], "str | None"]
"""Checks an image's signature in its registry (reference, root digest): ``None`` when it verifies or
needs none, else why not (``--verify-key``/``--verify-policy``, :mod:`linuxkit.oci.signing.registry`)."""


def image_refs(loaded: LoadedConfig) -> Iterator[tuple[str, tuple[str, int | None, tuple[str, ...]]]]:
    """Every image the config names, with where it was written (section, index, fields)."""
    moby = loaded.moby
    if moby.kernel and moby.kernel.image:
        yield moby.kernel.image, ("kernel", None, ("image",))
    for i, ref in enumerate(moby.init or []):
        yield ref, ("init", i, ())
    for i, vol in enumerate(moby.volumes or []):
        if vol.image:
            yield vol.image, ("volumes", i, ("image",))
    for section in ("onboot", "onshutdown", "services"):
        for i, img in enumerate(getattr(moby, section) or []):
            yield img.image, (section, i, ("image",))


class ImageFinder:
    """Finds the images of one build in the cache, pulling the missing ones (all of them with
    ``--pull``), once each, and says where a missing one was asked for."""

    def __init__(
        self,
        cache: Cache,
        platform: Platform,
        *,
        registry: RegistryOptions | None = None,
        always_pull: bool = False,
        packages: dict[str, str] | None = None,
        pkg_builder: PackageBuilder | None = None,
    ) -> None:
        self.cache = cache
        self.platform = platform
        self.registry = registry
        self.always_pull = always_pull
        self.packages = packages or {}  # normalised reference → package directory (from ``@pkg:``)
        self.pkg_builder = pkg_builder
        self._found: dict[str, ImageSource] = {}
        self._pulled: dict[str, str | None] = {}  # key → result of a pull done by _pull_in_parallel
        self._pulled_now: set[str] = set()  # the images this build pulled (verify_signatures unnames failures)

    def _build_package(self, key: str) -> bool:
        directory = self.packages.get(key)
        if directory is None or self.pkg_builder is None:
            return False
        log.info(f"{key} is not in the cache: building the package in {directory}")
        self.pkg_builder(directory, self.platform, key)
        return True

    def _pull(self, key: str) -> str | None:
        """Pull ``key`` for our platform; the reason when that failed (``None`` on success)."""
        if key in self._pulled:
            return self._pulled.pop(key)
        if self.registry is None:
            return "pulling is off"
        try:
            with log.step(f"Pulling {key}"):
                pull(self.cache, key, [self.platform], options=self.registry)
        except LinuxKitError as exc:
            return exc.message
        return None

    def _pull_in_parallel(self, loaded: LoadedConfig, volume_oci: set[str]) -> None:
        """Pull the images that will have to be pulled, several at a time (results kept for ``_pull``)."""
        if self.registry is None:
            return
        keys: list[str] = []
        for ref, _where in image_refs(loaded):
            key = reference.normalize(ref)
            if key in keys or key in volume_oci or (key in self.packages and self.pkg_builder is not None):
                continue
            try:
                if not self.always_pull and self._lookup(ref) is not None:
                    continue
            except LinuxKitError:
                continue  # a damaged entry: check_all reports it where the image is used
            keys.append(key)
        if len(keys) < 2:
            return

        def one(key: str) -> str | None:
            log.info(f"Pulling {key}")
            try:
                pull(self.cache, key, [self.platform], options=self.registry)
            except LinuxKitError as exc:
                return exc.message
            return None

        with log.step(f"Pulling {len(keys)} images"), ThreadPoolExecutor(min(4, len(keys))) as pool:
            self._pulled.update(zip(keys, pool.map(one, keys), strict=True))
        self._pulled_now.update(key for key in keys if self._pulled[key] is None)

    def _lookup(self, ref: str) -> ImageSource | None:
        key = reference.normalize(ref)
        if key not in self._found:
            image = self.cache.resolve(key, self.platform)
            if image is None:
                return None
            self._found[key] = image
        return self._found[key]

    def check_all(self, loaded: LoadedConfig, *, volume_oci: set[str]) -> None:
        """Resolve every image before writing anything; report all missing ones together."""
        diags: list[Diagnostic] = []
        seen: set[str] = set()
        self._pull_in_parallel(loaded, volume_oci)
        for ref, (section, index, fields) in image_refs(loaded):
            key = reference.normalize(ref)
            if key in seen or key in volume_oci:
                continue
            seen.add(key)
            if not self.always_pull and self._lookup(ref) is not None:
                continue
            if self._build_package(key) and self._lookup(ref) is not None:
                continue
            why = self._pull(key)
            if why is None:
                self._pulled_now.add(key)
            if why is None and self._lookup(ref) is not None:
                continue
            offered = self.cache.platforms(key)
            if why is not None:
                message = f"image {key} is not in the cache {self.cache.root} and could not be pulled: {why}"
                hint = "check the name and the registry, or import it (`linuxkit cache import FILE`) or build it"
            elif offered:
                message = f"image {key} is in the cache but not for {self.platform}"
                hint = "it has: " + ", ".join(map(str, offered)) + "; build with --arch to match"
            else:
                message = f"image {key} is not in the cache {self.cache.root}"
                hint = "import it with `linuxkit cache import FILE`, or build it with `linuxkit pkg build`"
            diags.append(
                Diagnostic(message, loaded.locate(section, index, *fields), _path(section, index, fields), hint)
            )
        if diags:
            raise MissingImagesError(diags)

    def verify_signatures(self, loaded: LoadedConfig, check: SignatureCheck) -> None:
        """Check the signature of every image the build reads from the cache (the root digest the cache
        names, pulled now or before) in its registry; images built here from their ``@pkg:`` directory
        and images not in the cache (not read by this build) are not checked. All failures are reported
        together, each at its line (exit 2); an image that failed and that this build pulled loses its name
        in the cache again (its blobs stay until ``cache clean``), so nothing unverified is left named."""
        diags: list[Diagnostic] = []
        seen: set[str] = set()
        for ref, (section, index, fields) in image_refs(loaded):
            key = reference.normalize(ref)
            if key in seen or key in self.packages:
                continue
            seen.add(key)
            root = self.cache.find(key)
            if root is None:
                continue
            why = check(key, root.digest)
            if why is not None and key in self._pulled_now:
                self.cache.untag(key)
                why += " (the image pulled for this build was not kept under its name)"
            if why is not None:
                diags.append(
                    Diagnostic(
                        f"image {key} ({root.digest}) failed signature verification: {why}",
                        loaded.locate(section, index, *fields),
                        _path(section, index, fields),
                        "use an image signed with the key (`linuxkit pkg push --sign-key`), or check the key and the"
                        " --verify-policy",
                    )
                )
        if diags:
            raise UnverifiedImagesError(diags)

    def __call__(self, ref: str, platform: Platform) -> ImageSource:
        image = self._lookup(ref)
        if image is None:
            raise BuildError(f"image {reference.normalize(ref)} is not in the cache {self.cache.root}")
        return image


def _path(section: str, index: int | None, fields: tuple[str, ...]) -> str:
    out = section if index is None else f"{section}[{index}]"
    return ".".join([out, *fields])


class MissingImagesError(BuildErrors):
    """One or more images could not be found or pulled (exit 1: the YAML is fine, the cache is not)."""


class UnverifiedImagesError(ConfigError):
    """One or more images have no valid signature under the key their policy names (exit 2: the
    images or the keys the user chose are wrong; nothing is written)."""
