"""What the numbers depend on: the machine (CPU, cores, caches, memory, load), how busy other
processes keep it, and which optional modules import."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
from typing import Any


def try_import(name: str) -> Any | None:
    """The module, or None when it is missing or its import fails (as unusable either way)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _caches_from_sys() -> list[dict[str, Any]]:
    """Cache levels seen by CPU 0, from /sys (Linux)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    caches = []
    try:
        entries = sorted(e for e in os.listdir(base) if e.startswith("index"))
    except OSError:
        return []
    for entry in entries:
        d = os.path.join(base, entry)
        caches.append(
            {
                "level": _read(os.path.join(d, "level")),
                "type": _read(os.path.join(d, "type")),
                "size": _read(os.path.join(d, "size")),
                "shared_cpu_list": _read(os.path.join(d, "shared_cpu_list")),
            }
        )
    return caches


def _lscpu() -> dict[str, str]:
    """lscpu's ``key: value`` lines (empty when lscpu is missing)."""
    exe = shutil.which("lscpu")
    if exe is None:
        return {}
    try:
        text = subprocess.run(
            [exe], capture_output=True, text=True, timeout=10, check=True, env={"LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("Vulnerability") and key.strip() != "Flags":
            info[key.strip()] = value.strip()
    return info


def machine_description() -> dict[str, Any]:
    """CPU model, core counts, caches, OS and Python: what the numbers depend on."""
    lscpu = _lscpu()
    model = lscpu.get("Model name") or platform.processor() or platform.machine()
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not lscpu.get("Model name"):
            model = value.strip()
            break
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cache_keys = ("L1d cache", "L1i cache", "L2 cache", "L3 cache")
    return {
        "cpu_model": model,
        "architecture": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": _physical_cores(cpuinfo),
        "usable_cpus": usable,
        "threads_per_core": lscpu.get("Thread(s) per core"),
        "cores_per_socket": lscpu.get("Core(s) per socket"),
        "sockets": lscpu.get("Socket(s)"),
        "hypervisor": lscpu.get("Hypervisor vendor"),
        "caches_lscpu": {k: lscpu[k] for k in cache_keys if k in lscpu},
        "caches_sys": _caches_from_sys(),
        "simd_flags": sorted(flags & {"sse2", "avx", "avx2", "fma", "f16c", "avx512f", "asimd"}),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _physical_cores(cpuinfo: str) -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo: the cores, whatever lscpu says
    or whether it is installed. None where the file has no core ids (some virtual machines,
    other systems)."""
    cores: set[tuple[str, str]] = set()
    physical_id = core_id = ""
    for line in [*cpuinfo.splitlines(), ""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
        elif not key:  # a blank line ends one logical CPU's block
            if core_id:
                cores.add((physical_id, core_id))
            physical_id = core_id = ""
    return len(cores) or None


def _memory_bytes() -> int | None:
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


class CpuMeter:
    """How busy other processes kept the CPUs over an interval: the machine's busy time
    (/proc/stat) minus this process's own CPU time, as a fraction of all CPUs' time.

    On a shared machine this says which measurements ran beside someone else's work: a
    multi-threaded call then waits for a core, often for a whole scheduler time slice.
    None where /proc/stat is missing. Coarse: the kernel counts in ticks (10 ms).
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        text = _read("/proc/stat")
        if not text or not text.startswith("cpu "):
            return None
        fields = [int(v) for v in text.splitlines()[0].split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        total = sum(fields) / tick
        busy = total - (fields[3] + fields[4]) / tick  # all but idle and iowait
        own = os.times()
        return busy, total, own.user + own.system

    def others(self) -> float | None:
        """Fraction of all CPUs' time used by other processes since the meter started."""
        end = self._sample()
        if self._start is None or end is None:
            return None
        busy = end[0] - self._start[0]
        total = end[1] - self._start[1]
        own = end[2] - self._start[2]
        if total <= 0:
            return None
        return min(1.0, max(0.0, (busy - own) / total))


def short_machine(machine: dict[str, Any]) -> str:
    caches = [c for c in machine["caches_sys"] if c.get("type") != "Instruction"]
    if caches:
        shared = [
            "-" in (c["shared_cpu_list"] or "") or "," in (c["shared_cpu_list"] or "")
            for c in caches
        ]
        cache_text = ", ".join(
            f"L{c['level']} {c['size']}" + (" shared" if sh else " per core")
            for c, sh in zip(caches, shared, strict=True)
        )
    else:
        lscpu = machine["caches_lscpu"]
        cache_text = ", ".join(f"{k.split()[0]} {v}" for k, v in lscpu.items())
    return f"{machine['cpu_model']}, {machine['usable_cpus']} usable CPUs" + (
        f" ({cache_text})" if cache_text else ""
    )


def torch_cpu_capability(torch: Any) -> str | None:
    """The kernels PyTorch's CPU dispatch picked (``DEFAULT``, ``AVX2``, ``AVX512``, ...), or
    None on a PyTorch without ``torch.backends.cpu.get_cpu_capability``.

    PyTorch picks them once, when it is imported, from the CPU and the environment variable
    ATEN_CPU_CAPABILITY: setting it later changes nothing, so the run reports what it got.
    """
    backend = try_import(f"{torch.__name__}.backends.cpu")
    get = getattr(backend, "get_cpu_capability", None)
    if get is None:
        return None
    try:
        return str(get())
    except Exception:
        return None


def isa_description(
    info: dict[str, Any], requested: str | None, torch: Any | None
) -> dict[str, Any]:
    """Which kernels ran: logitkit's ISA and what chose it, and PyTorch's CPU capability
    (None when PyTorch is not loaded or does not say)."""
    env = os.environ.get("LOGITKIT_ISA", "").lower()
    if requested is not None:
        source = "--isa"
    elif env and info["active_isa"] == env:
        source = "LOGITKIT_ISA"
    elif not env and info["active_isa"] == info["best_isa"]:
        source = "default"
    else:  # main() called inside the caller's own use_isa block
        source = "use_isa"
    return {
        "logitkit": info["active_isa"],
        "logitkit_chosen_by": source,
        "logitkit_best": info["best_isa"],
        "torch": None if torch is None else torch_cpu_capability(torch),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY") or None,
    }
