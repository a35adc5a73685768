"""What machine a number was measured on: the processor, the JAX device and the software versions.

Benchmarks (scripts/bench.py) and results (scripts/results.py) record it beside every timing, since speeds
compare only within one machine.
"""

from __future__ import annotations

import os
import platform

import jax


def device_info(device_name: str | None) -> dict:
    """The machine: `device_name` if given, else the CPU model (or the device kind), with the JAX device, core
    counts and versions."""
    processor = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            processor = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), processor)
    except OSError:
        pass
    device = jax.devices()[0]
    return {"name": device_name or processor or device.device_kind, "device_kind": device.device_kind,
            "platform": device.platform, "num_devices": jax.device_count(), "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "processor": processor, "jax": jax.__version__, "python": platform.python_version(),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
