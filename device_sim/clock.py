"""The device's time of one model invocation, and the host's.

A stage of a frame (preprocess -> inference -> postprocess) runs on the host, which measures each part
(the *_host_ms columns). The device's time of each part comes from its DeviceTiming
(device_sim.device): projected or fixed, the same on every frame; a part the timing leaves to the host
(None) takes what the host measured. Nothing here waits: the frame loop (device_sim.loop) places the
device's times on its virtual clock, or, in real time, sleeps until they have passed (`sleep_until`).
`run_timed` is that sequence for one invocation of one model; the single-model run and every stage of a
pipeline go through it.
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


def _device(ms: float | None, host_ms: float) -> float:
    return host_ms if ms is None else ms


def run_timed(model, timing, prepare: Callable[[], object], finish: Callable[[object], object]):
    """prepare() -> model input; model.invoke; finish(raw outputs) -> result. Returns (result, StageTimes):
    the host's time of each part as measured, the device's as `timing` (a DeviceTiming) gives it."""
    t0 = time.perf_counter()
    x = prepare()
    t1 = time.perf_counter()
    raw = model.invoke(x)
    t2 = time.perf_counter()
    result = finish(raw)
    t3 = time.perf_counter()
    pre, inference, post = (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3
    return result, StageTimes(pre_ms=_device(timing.pre_ms, pre), inference_ms=_device(timing.inference_ms, inference),
                              post_ms=_device(timing.post_ms, post), pre_host_ms=pre, inference_host_ms=inference,
                              post_host_ms=post)
