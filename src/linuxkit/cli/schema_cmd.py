"""``linuxkit schema``: the JSON Schema of a LinuxKit YAML, for editors (``yaml-language-server``)."""

from __future__ import annotations

import argparse
import sys

from ..config.jsonschema import render
from .common import CommonOptions


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    sys.stdout.write(render())
    sys.stdout.flush()
    return 0
