"""Confine a worker process to what Lambda gives a function of a given memory size.

Lambda's CPU share is proportional to memory (1 vCPU at 1,769 MB, enforced by CPU bandwidth control)
and memory is a hard limit (the process is killed above it). On Linux with writable cgroups (v1 ``cpu``
and ``memory`` controllers, or v2 ``cpu.max``/``memory.max``) a :class:`Sandbox` applies the same two
limits: CFS quota = share x period, memory limit = the memory size, and the CPU affinity is set to the
number of cores the function would see. Without cgroups the limits are not enforced and results say so.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from mlinfer.runtime.threads import available_cpus, lambda_cores, lambda_vcpus

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def _v1_own(controller: str) -> Path | None:
    """This process's cgroup directory for a v1 controller."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return CGROUP_ROOT / controller / path.lstrip("/")
    except OSError:
        return None
    return None


class Sandbox:
    """A cgroup (v1 or v2) with Lambda's CPU quota and memory limit for ``memory_mb``."""

    def __init__(self, memory_mb: int, enforce: bool = True) -> None:
        self.memory_mb = memory_mb
        self.share = lambda_vcpus(memory_mb)
        self.cores = max(1, min(lambda_cores(memory_mb), available_cpus()))
        self.cpu_enforced = False
        self.memory_enforced = False
        self._dirs: list[Path] = []
        if enforce:
            self._create()

    def _mkdir(self, parent: Path | None) -> Path | None:
        if parent is None or not parent.is_dir():
            return None
        path = parent / f"mlinfer-bench-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
        except OSError:
            return None
        self._dirs.append(path)
        return path

    @staticmethod
    def _write(path: Path, value: str) -> bool:
        try:
            path.write_text(value)
            return True
        except OSError:
            return False

    def _create(self) -> None:
        quota = max(1000, int(min(self.share, self.cores) * PERIOD_US))
        limit = self.memory_mb * 1024 * 1024
        if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2
            own = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[-1]
            d = self._mkdir(CGROUP_ROOT / own.lstrip("/"))
            if d:
                self.cpu_enforced = self._write(d / "cpu.max", f"{quota} {PERIOD_US}")
                self.memory_enforced = self._write(d / "memory.max", str(limit))
            return
        cpu = self._mkdir(_v1_own("cpu"))
        if cpu:
            self.cpu_enforced = self._write(cpu / "cpu.cfs_period_us", str(PERIOD_US)) and self._write(
                cpu / "cpu.cfs_quota_us", str(quota)
            )
        mem = self._mkdir(_v1_own("memory"))
        if mem:
            self.memory_enforced = self._write(mem / "memory.limit_in_bytes", str(limit))
            self._write(mem / "memory.swappiness", "0")

    @classmethod
    def probe(cls, memory_mb: int) -> tuple[bool, bool]:
        """Whether CPU and memory limits can be enforced here (creates and removes a cgroup)."""
        box = cls(memory_mb)
        box.close()
        return box.cpu_enforced, box.memory_enforced

    def add(self, pid: int) -> None:
        """Move ``pid`` into the sandbox."""
        for d in self._dirs:
            self._write(d / "cgroup.procs", str(pid))

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this sandbox for exceeding its memory limit."""
        for d in self._dirs:
            for name in ("memory.events", "memory.oom_control"):  # v2, v1 (kernel 4.13+)
                try:
                    for line in (d / name).read_text().splitlines():
                        if line.startswith("oom_kill "):
                            return int(line.split()[1])
                except OSError:
                    continue
        return 0

    def cores_for(self, slot: int) -> list[int]:
        """The cores environment number ``slot`` runs on: as many as the function would see, spread over
        the host so that concurrent environments do not share a core while others are free."""
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        start = (slot * self.cores) % len(cpus)
        return [cpus[(start + i) % len(cpus)] for i in range(self.cores)]

    def close(self) -> None:
        for d in reversed(self._dirs):
            with contextlib.suppress(OSError):  # a process may still be exiting; an empty cgroup is harmless
                d.rmdir()
        self._dirs.clear()
