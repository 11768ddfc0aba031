"""The machine a benchmark ran on, for its JSON line: one home for the fields every bench reports
(cores, machine, load average, JAX version and devices). Each bench keeps its own field names.

Imported by the bench scripts as `from header import ...` (they run as `python bench/NAME.py`).
"""

from __future__ import annotations

import os
import platform


def cpus() -> int | None:
    """Logical CPUs of the machine."""
    return os.cpu_count()


def machine() -> str:
    """The machine's architecture, e.g. x86_64."""
    return platform.machine()


def load_1m(digits: int | None = None) -> float | None:
    """The 1-minute load average (other work on the machine skews timings); None where unknown."""
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    return load if digits is None else round(load, digits)


def jax_fields() -> dict:
    """Platform, device kind and count, CPUs, machine and JAX version (imports JAX)."""
    import jax

    devices = jax.devices()
    return {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
            "device_count": len(devices), "cpu_count": cpus(), "machine": machine(),
            "jax": jax.__version__}


def run_footer(load_start: float | None, started: float) -> dict:
    """The closing fields of a bench's JSON line: the load average at its start and end, and its
    wall time since `started` (a `time.perf_counter()` reading)."""
    import time

    return {"loadavg_1m_start": load_start, "loadavg_1m_end": load_1m(),
            "wall_s": round(time.perf_counter() - started, 1)}
