"""The ``run_stats.json`` the benchmark harness writes beside each model run.

It records the exact ``run_crslab.py`` command, exit code (``null`` while running), wall
time, peak memory and hardware. ``benchmarks/run_benchmark.py`` writes and reuses it;
``benchmarks/collect_runs.py`` reads it to skip killed runs and compare recipes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

from crslab_mscrs.config import effective_overrides

RUN_STATS_FILE = "run_stats.json"


def read_run_stats(path: Path) -> Optional[dict]:
    """The record at ``path`` (None if absent); ValueError naming the file if it is not JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def command_overrides(command: Sequence[str]) -> List[str]:
    """The ``--set`` overrides of a recorded command as they act (last value of each key)."""
    return effective_overrides(command[i + 1] for i, flag in enumerate(command[:-1]) if flag == "--set")
