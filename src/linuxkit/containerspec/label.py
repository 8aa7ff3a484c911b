"""The ``org.mobyproject.config`` label: an image's own defaults for the YAML image keys."""

from __future__ import annotations

from typing import Any

import yaml

from ..config import schema
from ..config.paths import FieldPath, image_path_problems
from ..config.validate import dotted
from ..errors import BuildError, UserError
from ..oci import jsonfmt
from ..oci.image import MOBY_CONFIG_LABEL

_HINT = (
    f"the {MOBY_CONFIG_LABEL} label must be a JSON object with the keys of a YAML image entry "
    "(capabilities, binds, mounts, ...) except name and image; rebuild the image with a valid label"
)


def _error(image_ref: str, detail: str) -> BuildError:
    return BuildError(f"image {image_ref}: invalid {MOBY_CONFIG_LABEL} label: {detail}", hint=_HINT)


def _decode(text: str, image_ref: str) -> Any:
    try:
        return jsonfmt.loads(text, "label")
    except jsonfmt.LimitError as exc:  # nested too deeply or too large: not YAML either
        raise _error(image_ref, str(exc).removeprefix("label: ")) from None
    except ValueError as json_error:
        # upstream reads the label with a YAML parser, so YAML that is not JSON is accepted too
        try:
            return yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError):
            raise _error(image_ref, str(json_error).removeprefix("label: ")) from None


def _describe(issues: list[schema.Issue]) -> str:
    problems = []
    for issue in issues:
        where = ".".join(str(part) for part in issue.path)
        if issue.kind == "unknown":
            message = "unknown key"
        elif issue.kind == "missing":
            message = "required key is missing"
        else:
            message = "must be " + " or ".join(issue.expected)
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def parse_label(text: str, image_ref: str) -> schema.ImageConfig:
    """The label's settings; :class:`BuildError` (naming ``image_ref`` and the label) when it is invalid."""
    value = _decode(text, image_ref)
    if not isinstance(value, dict):
        raise _error(image_ref, f"expected an object, got {type(value).__name__}")
    for key in ("name", "image"):
        if key in value:
            raise _error(image_ref, f"{key} cannot be set in the label")
    config, issues = schema.check(schema.ImageConfig, value)
    if issues:
        raise _error(image_ref, _describe(issues))
    return config


def image_label(image_config: dict[str, Any], image_ref: str) -> schema.ImageConfig:
    """The parsed label of an OCI image config, or empty settings when it has none (or an empty one)."""
    inner = image_config.get("config") or {}
    labels = inner.get("Labels") or {}
    text = labels.get(MOBY_CONFIG_LABEL) or ""
    if not text:
        return schema.ImageConfig()
    return parse_label(str(text), image_ref)


def _overridden(where: FieldPath, yaml: schema.ImageConfig) -> bool:
    """Whether the YAML entry sets the field at ``where``, so the label's value is not used."""
    if where[0] == "runtime":
        return yaml.runtime is not None and getattr(yaml.runtime, str(where[1])) is not None
    if where[0] == "binds.add":  # ignored in a label
        return True
    return getattr(yaml, str(where[0])) is not None


def check_label_paths(label: schema.ImageConfig, yaml: schema.ImageConfig, image_ref: str) -> None:
    """The label's mount destinations and runtime paths that will be used (the YAML entry does not
    override them) follow the YAML's rules; :class:`UserError` naming the image and the field if not."""
    for where, message, hint in image_path_problems(label):
        if not _overridden(where, yaml):
            raise UserError(
                f"image {image_ref}: {MOBY_CONFIG_LABEL} label: {dotted(where)}: {message}",
                hint=f"{hint}; fix the image's label or set {dotted(where[:1])} in the YAML entry to override it",
            )
