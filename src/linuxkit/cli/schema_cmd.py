"""``linuxkit schema``: the JSON Schema of a LinuxKit YAML, for editors (``yaml-language-server``)."""

from __future__ import annotations

import argparse
import sys

from .common import CommonOptions, add_verb


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_verb(verbs, "schema", "print the JSON Schema (draft 2020-12) of a LinuxKit YAML")
    parser.set_defaults(func=run, uses_log=False)


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..config.jsonschema import render

    sys.stdout.write(render())
    sys.stdout.flush()
    return 0
