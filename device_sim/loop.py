"""The camera-frame loop.

Real-time mode: a capture thread delivers frames at the camera's fps, independently of inference,
into a drop policy; the inference thread takes what the policy hands it. Drops are therefore real:
- latest: one slot, a new frame replaces a waiting one (MediaPipe's flow limiter, one frame in flight);
- queue: a bounded FIFO; a frame that finds it full is dropped, the others wait (queueing delay).
Max-speed mode (--max-speed): capture and inference alternate in one thread, no pacing, no drops.

The emulated target CPU: after each real invoke of t ms, the loop sleeps (slowdown - 1) * r, where r
is this host's warm inference time measured once before the loop, so the device's inference time
(t + (slowdown - 1) * r, about r * slowdown) is spent in wall-clock time and the pipeline reacts to
it. The device's speed is a property of the device: this shared host's drift and frame-to-frame
noise are kept as they are, not amplified by the factor.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

from device_sim.camera import SourceFailed
from device_sim.memory import rss_mb

__all__ = ["FrameRecord", "LoopResult", "run_loop", "LatestSlot", "BoundedQueue", "sleep_until"]


@dataclass
class FrameRecord:
    index: int                 # capture index (frames in between were dropped)
    capture_s: float           # capture timestamp, seconds since the loop started
    queue_ms: float            # capture -> processing starts
    preprocess_ms: float
    inference_host_ms: float   # measured on this host
    inference_ms: float        # emulated on the target (host * slowdown)
    postprocess_ms: float
    e2e_ms: float              # capture -> result
    deadline_met: bool
    label: int | None
    pred: int
    confidence: float
    correct: bool | None
    rss_mb: float
    dropped_so_far: int

    def as_row(self) -> dict:
        return asdict(self)


@dataclass
class LoopResult:
    records: list[FrameRecord]
    captured: int
    dropped: int
    stop_reason: str
    failed: bool               # the source failed mid-stream
    wall_s: float


@dataclass
class _Item:
    index: int
    t: float
    frame: object
    label: int | None


class LatestSlot:
    """One waiting frame at most; a newer frame replaces it (the replaced one is dropped)."""

    def __init__(self):
        self._cond, self._item, self._closed, self.dropped = threading.Condition(), None, False, 0

    def put(self, item: _Item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self) -> _Item | None:
        with self._cond:
            while self._item is None and not self._closed:
                self._cond.wait()
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class BoundedQueue:
    """FIFO of at most `size` waiting frames; a frame arriving to a full queue is dropped."""

    def __init__(self, size: int):
        self._cond, self._items, self._closed = threading.Condition(), deque(), False
        self.size, self.dropped = size, 0

    def put(self, item: _Item) -> None:
        with self._cond:
            if len(self._items) >= self.size:
                self.dropped += 1
                return
            self._items.append(item)
            self._cond.notify()

    def get(self) -> _Item | None:
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def run_loop(model, source, profile, *, duration_s: float | None, max_frames: int | None, max_speed: bool,
             reference_s: float = 0.0, on_frame=None) -> LoopResult:
    """Runs until the duration or frame count is reached or the source ends or fails."""
    state = {"captured": 0, "reason": "", "failed": False}
    records: list[FrameRecord] = []
    t0 = time.perf_counter()

    def done(count: int) -> str:
        if max_frames is not None and count >= max_frames:
            return f"{max_frames} frames reached"
        if duration_s is not None and time.perf_counter() - t0 >= duration_s:
            return f"duration {duration_s:g} s reached"
        return ""

    def read():
        try:
            got = source.read()
        except SourceFailed as e:
            state["reason"], state["failed"] = f"source failed: {e}", True
            return None
        if got is None:
            state["reason"] = f"source ended after {state['captured']} frames"
        return got

    def process(item: _Item, dropped: int) -> None:
        t_start = time.perf_counter()
        x = model.preprocess(item.frame)
        t1 = time.perf_counter()
        raw = model.invoke(x)
        t2 = time.perf_counter()
        host = t2 - t1
        if profile.slowdown > 1.0:
            sleep_until(t2 + (reference_s or host) * (profile.slowdown - 1.0))
        t3 = time.perf_counter()
        pred = model.postprocess(raw)
        t4 = time.perf_counter()
        e2e = (t4 - t0 - item.t) * 1e3
        rec = FrameRecord(
            index=item.index, capture_s=item.t, queue_ms=(t_start - t0 - item.t) * 1e3,
            preprocess_ms=(t1 - t_start) * 1e3, inference_host_ms=host * 1e3, inference_ms=(t3 - t1) * 1e3,
            postprocess_ms=(t4 - t3) * 1e3, e2e_ms=e2e, deadline_met=e2e <= profile.latency_ms,
            label=item.label, pred=pred.label, confidence=pred.confidence,
            correct=None if item.label is None else pred.label == item.label, rss_mb=rss_mb(), dropped_so_far=dropped,
        )
        records.append(rec)
        if on_frame is not None:
            on_frame(rec)

    if max_speed:
        while not (reason := done(state["captured"])):
            got = read()
            if got is None:
                break
            state["captured"] += 1
            process(_Item(state["captured"] - 1, time.perf_counter() - t0, *got), 0)
        return LoopResult(records, state["captured"], 0, state["reason"] or reason, state["failed"],
                          time.perf_counter() - t0)

    policy = LatestSlot() if profile.drop_policy == "latest" else BoundedQueue(profile.queue_size)
    period = 1.0 / profile.fps

    def capture() -> None:
        i = 0
        while True:
            if reason := done(i):
                state["reason"] = reason
                break
            sleep_until(t0 + i * period)
            got = read()
            if got is None:
                break
            policy.put(_Item(i, time.perf_counter() - t0, *got))
            i += 1
            state["captured"] = i
        policy.close()

    thread = threading.Thread(target=capture, name="camera", daemon=True)
    thread.start()
    while (item := policy.get()) is not None:
        process(item, policy.dropped)
    thread.join()
    return LoopResult(records, state["captured"], policy.dropped, state["reason"], state["failed"],
                      time.perf_counter() - t0)


def sleep_until(deadline: float) -> None:
    """time.sleep for the bulk, a short spin for the last half millisecond (sleep overshoots)."""
    while (left := deadline - time.perf_counter()) > 0:
        if left > 0.001:
            time.sleep(left - 0.0005)
