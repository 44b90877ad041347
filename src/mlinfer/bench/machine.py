"""The machine a figure was measured on: CPU model and the instruction sets int8 speed depends on.

Every benchmark prints :func:`describe` first; int8 GEMMs run several times faster with AVX-512 VNNI,
AVX-VNNI or AMX than with AVX2 alone (x86), and with the dot-product extension on Arm.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: cpuinfo flag -> the name used in docs tables (x86 ``flags``, Arm ``Features``).
INT8_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
    "avx512_bf16": "AVX-512 BF16",
    "asimddp": "Arm dotprod",
    "i8mm": "Arm i8mm",
    "sve": "SVE",
}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_model() -> str:
    """The model name, with x86 family/model numbers (a virtual machine may show a generic name)."""
    info = _cpuinfo()
    name = info.get("model name") or info.get("Model") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return name


def int8_flags() -> list[str]:
    """Which of :data:`INT8_FLAGS` this CPU has, in that order."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [name for flag, name in INT8_FLAGS.items() if flag in flags]


def describe() -> str:
    """``CPU: <model> (<arch>), <n> cores here; int8: AVX2, AVX-512 VNNI, ...``"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = ", ".join(int8_flags()) or "none of " + ", ".join(INT8_FLAGS.values())
    return f"CPU: {cpu_model()}, {platform.machine()}, {cores} cores here; int8 instruction sets: {flags}"
