"""Golden files of desktop ``run`` plans (``tests/unit/data/run_plans/BACKEND/CASE.txt``): the plan's
text rendering, the test's temporary directory shown as ``$DIR``. ``LINUXKIT_UPDATE_GOLDEN=1``
rewrites them (then read the diff: each README says what upstream runs for the same flags)."""

from __future__ import annotations

import os
from pathlib import Path

from linuxkit.run.plan import Plan, render

DATA = Path(__file__).parent / "data" / "run_plans"


def check_golden(backend: str, case: str, plan: Plan, tmp: Path) -> str:
    text = render(plan, {tmp: "$DIR"})
    golden = DATA / backend / f"{case}.txt"
    if os.environ.get("LINUXKIT_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}: run with LINUXKIT_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), f"the plan differs from {golden}:\n{text}"
    return text
