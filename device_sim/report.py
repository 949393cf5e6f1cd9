"""Host facts and frames.csv of a simulation run (JSON and atomic writes come from contract.files)."""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path

from contract.files import atomic_write

__all__ = ["host_info", "cpu_info", "write_frames_csv"]


def cpu_info() -> tuple[str, set[str]]:
    """(CPU model name, ISA flags) from /proc/cpuinfo; the platform's processor string and no flags
    where there is no /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                key, _, value = ln.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields.get("model name") or platform.processor() or "", set(fields.get("flags", "").split())


def host_info() -> dict:
    return {"cpu": cpu_info()[0], "cores": os.cpu_count(), "machine": platform.machine(), "system": platform.system(),
            "python": platform.python_version(),
            "note": "this machine runs the loop; latency without '_host' is the device's (report.device says how)"}


def write_frames_csv(path: Path, rows: list[dict]) -> None:
    def write(p: Path) -> None:
        with open(p, "w", newline="") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    atomic_write(path, write)
