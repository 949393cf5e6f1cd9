"""Resident memory of this process (psutil), and its peak."""

from __future__ import annotations

import resource
import sys

import psutil

__all__ = ["rss_mb", "peak_rss_mb"]

_PROC = psutil.Process()


def rss_mb() -> float:
    return _PROC.memory_info().rss / 1e6


def peak_rss_mb() -> float:
    """Peak RSS of this process image. On Linux this is VmHWM, not ru_maxrss: ru_maxrss survives
    fork+exec, so a simulator started from a big parent (a test runner holding torch) would report the
    parent's size as its own peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6
