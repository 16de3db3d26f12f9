"""What every benchmark writes: the machine it ran on, and its JSON record."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import psutil

from storyhash_core.machine import cpu
from storyhash_core.stages.run import versions


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "cpu": cpu(),
        "versions": versions(),
    }


def write_record(record: dict, out: str | Path) -> None:
    """Print ``record`` and write it to ``out`` as JSON."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
