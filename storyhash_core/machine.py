"""What a result was computed on: the CPU model and the instruction sets that change numbers."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# x86 flags that select different kernels in onnxruntime, OpenCV, x264 and FAISS
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx_vnni_int8",
    "amx_tile",
    "amx_int8",
)


@functools.cache
def cpu() -> dict:
    """``{"model": ..., "isa": {flag: bool}}`` from ``/proc/cpuinfo`` (Linux), else the platform."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.is_file() else ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "isa": {f: f in flags for f in ISA_FLAGS} if flags else {},
    }
