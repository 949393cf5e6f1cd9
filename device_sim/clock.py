"""Spending the device's time on the host's clock.

A stage of a frame (preprocess -> inference -> postprocess) runs on the host; after each part the
loop sleeps until the device's time for that part has passed (device_sim.device.DeviceTiming): the
projected inference, and the host's pre/post-processing plus what the slower core adds to them. A
part the host runs slower than the device takes the host's time. `run_timed` is that sequence for one
invocation of one model; the single-model run and every stage of a pipeline go through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields

__all__ = ["sleep_until", "StageTimes", "run_timed"]


def sleep_until(deadline: float) -> None:
    """time.sleep for the bulk, a short spin for the last half millisecond (sleep overshoots)."""
    while (left := deadline - time.perf_counter()) > 0:
        if left > 0.001:
            time.sleep(left - 0.0005)


@dataclass
class StageTimes:
    """Milliseconds of one invocation (or the sum of several): on the device, and as this host measured."""
    pre_ms: float = 0.0
    inference_ms: float = 0.0
    post_ms: float = 0.0
    pre_host_ms: float = 0.0
    inference_host_ms: float = 0.0
    post_host_ms: float = 0.0

    @property
    def device_ms(self) -> float:
        return self.pre_ms + self.inference_ms + self.post_ms

    @property
    def host_ms(self) -> float:
        return self.pre_host_ms + self.inference_host_ms + self.post_host_ms

    def add(self, other: StageTimes) -> StageTimes:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def _spend(start: float, extra_ms: float) -> tuple[float, float]:
    """Called right after a host part that began at `start`: the device takes `extra_ms` longer.
    Returns (when the part ended on the device, host ms)."""
    end = time.perf_counter()
    if extra_ms > 0.0:
        sleep_until(end + extra_ms / 1e3)
    return time.perf_counter(), (end - start) * 1e3


def run_timed(model, timing, prepare: Callable[[], object], finish: Callable[[object], object]):
    """prepare() -> model input; model.invoke; finish(raw outputs) -> result. Returns (result, StageTimes),
    each part spending the device's time (`timing`: a DeviceTiming)."""
    t_start = time.perf_counter()
    x = prepare()
    pre_end, pre_host = _spend(t_start, timing.pre_extra_ms)
    raw = model.invoke(x)
    t2 = time.perf_counter()
    if timing.inference_ms is not None:
        sleep_until(pre_end + timing.inference_ms / 1e3)
    t3 = time.perf_counter()
    result = finish(raw)
    post_end, post_host = _spend(t3, timing.post_extra_ms)
    return result, StageTimes(pre_ms=(pre_end - t_start) * 1e3, inference_ms=(t3 - pre_end) * 1e3,
                              post_ms=(post_end - t3) * 1e3, pre_host_ms=pre_host,
                              inference_host_ms=(t2 - pre_end) * 1e3, post_host_ms=post_host)
