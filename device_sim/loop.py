"""The camera-frame loop.

Real-time mode: a capture thread delivers frames at the camera's fps, independently of inference,
into a drop policy; the inference thread takes what the policy hands it. Drops are therefore real:
- latest: one slot, a new frame replaces a waiting one (MediaPipe's flow limiter, one frame in flight);
- queue: a bounded FIFO; a frame that finds it full is dropped, the others wait (queueing delay).
Max-speed mode (--max-speed): capture and inference alternate in one thread, no pacing, no drops.

The device (device_sim.device.DeviceTiming, spent by device_sim.clock.run_timed inside the work): after
each part of a frame's work runs on the host, the loop sleeps until the device's time for it has passed
(a projected inference, host pre/post-processing scaled by the core factor), so drops, queueing and
deadlines follow the device. A part the host runs slower than the device takes the host's time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from contract.outputs import HeldSignals
from device_sim.clock import sleep_until
from device_sim.frames import FrameRecord, FrameTable
from device_sim.memory import rss_mb
from device_sim.sources.base import CorruptFrame, SourceFailed

__all__ = ["FrameRecord", "LoopResult", "run_loop", "LatestSlot", "BoundedQueue", "sleep_until", "MAX_BAD_FRAMES"]

MAX_BAD_FRAMES = 10   # consecutive corrupt frames that end a run as partial (a real camera app skips a few)


@dataclass
class LoopResult:
    records: FrameTable
    captured: int
    dropped: int
    stop_reason: str
    failed: bool               # the source failed mid-stream
    wall_s: float
    bad_frames: list[str] = field(default_factory=list)   # corrupt frames the source delivered (skipped)
    interrupted: BaseException | None = None   # Ctrl-C / SIGTERM stopped the loop (re-raised by the caller)
    held_signals: HeldSignals | None = None     # further Ctrl-C held from then on: the caller releases them


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


class _Run:
    """One loop's shared state: the clock, the stop rule, the records."""

    def __init__(self, work, source, profile, *, duration_s, max_frames, on_frame, max_bad_frames):
        self.work, self.source, self.profile, self.max_bad_frames = work, source, profile, max_bad_frames
        self.duration_s, self.max_frames, self.on_frame = duration_s, max_frames, on_frame
        self.captured, self.reason, self.failed, self.stop = 0, "", False, False
        self.records = FrameTable()
        self.bad_frames: list[str] = []
        self.interrupted: BaseException | None = None
        self.held_signals: HeldSignals | None = None
        self.t0 = time.perf_counter()

    def done(self, count: int) -> str:
        if self.stop:
            return "interrupted"
        if self.max_frames is not None and count >= self.max_frames:
            return f"{self.max_frames} frames reached"
        if self.duration_s is not None and time.perf_counter() - self.t0 >= self.duration_s:
            return f"duration {self.duration_s:g} s reached"
        return ""

    def read(self):
        """The next good frame, skipping corrupt ones; None at the end, on failure, or after too many
        corrupt frames in a row (then the run is partial)."""
        in_a_row = 0
        while True:
            try:
                got = self.source.read()
                if got is not None:
                    _check_frame(got[0])
            except CorruptFrame as e:
                self.bad_frames.append(str(e))
                in_a_row += 1
                if in_a_row > self.max_bad_frames:
                    self.reason, self.failed = f"source failed: {in_a_row} corrupt frames in a row ({e})", True
                    return None
                continue
            except SourceFailed as e:
                self.reason, self.failed = f"source failed: {e}", True
                return None
            if got is None:
                self.reason = f"source ended after {self.captured} frames"
            return got

    def process(self, item: _Item, dropped: int) -> None:
        t_start = time.perf_counter()
        out = self.work.process(item.frame)
        e2e = (time.perf_counter() - self.t0 - item.t) * 1e3
        t = out.times
        rec = FrameRecord(
            index=item.index, capture_s=item.t, queue_ms=(t_start - self.t0 - item.t) * 1e3,
            preprocess_ms=t.pre_ms, inference_ms=t.inference_ms, postprocess_ms=t.post_ms,
            preprocess_host_ms=t.pre_host_ms, inference_host_ms=t.inference_host_ms, postprocess_host_ms=t.post_host_ms,
            e2e_ms=e2e, deadline_met=e2e <= self.profile.deadline_ms, label=item.label, pred=out.pred,
            confidence=out.confidence,
            correct=None if item.label is None or out.pred < 0 else out.valid and out.pred == item.label,
            rss_mb=rss_mb(), dropped_so_far=dropped, valid=out.valid, columns=out.columns,
        )
        self.records.append(rec)
        if self.on_frame is not None:
            self.on_frame(rec)

    def result(self, dropped: int, reason: str = "") -> LoopResult:
        if self.interrupted is not None:
            reason = self.reason = "terminated" if type(self.interrupted).__name__ == "Terminated" else "interrupted"
        return LoopResult(self.records, self.captured, dropped, self.reason or reason, self.failed,
                          time.perf_counter() - self.t0, self.bad_frames, self.interrupted, self.held_signals)


def _check_frame(frame) -> None:
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        shape = getattr(frame, "shape", None)
        raise CorruptFrame(f"frame is not uint8 HxWx3 (got {getattr(frame, 'dtype', type(frame).__name__)} {shape})")


def run_loop(work, source, profile, *, duration_s: float | None, max_frames: int | None, max_speed: bool,
             on_frame=None, max_bad_frames: int = MAX_BAD_FRAMES) -> LoopResult:
    """`work` (device_sim.work): one model or a pipeline, which spends the device's time per frame. Runs
    until the duration or frame count is reached, the source ends or fails, or Ctrl-C / SIGTERM
    (KeyboardInterrupt) arrives: then the frames so far are returned with `interrupted` set."""
    run = _Run(work, source, profile, duration_s=duration_s, max_frames=max_frames, on_frame=on_frame,
               max_bad_frames=max_bad_frames)
    return _max_speed(run) if max_speed else _real_time(run)


def _max_speed(run: _Run) -> LoopResult:
    """Capture and inference alternate in this thread: no pacing, no drops."""
    reason = ""
    try:
        while not (reason := run.done(run.captured)):
            got = run.read()
            if got is None:
                break
            run.captured += 1
            run.process(_Item(run.captured - 1, time.perf_counter() - run.t0, *got), 0)
    except KeyboardInterrupt as e:
        run.held_signals = HeldSignals()   # a second Ctrl-C must not lose the frames measured so far
        run.interrupted = e
    return run.result(0, reason)


def _real_time(run: _Run) -> LoopResult:
    """A capture thread delivers frames at the camera's rate into the drop policy; this thread infers."""
    profile = run.profile
    policy = LatestSlot() if profile.drop_policy == "latest" else BoundedQueue(profile.queue_size)
    period = 1.0 / profile.fps

    def capture() -> None:
        i = 0
        while True:
            if reason := run.done(i):
                run.reason = reason
                break
            sleep_until(run.t0 + i * period)
            got = run.read()
            if got is None:
                break
            policy.put(_Item(i, time.perf_counter() - run.t0, *got))
            i += 1
            run.captured = i
        policy.close()

    thread = threading.Thread(target=capture, name="camera", daemon=True)
    thread.start()
    try:
        while (item := policy.get()) is not None:
            run.process(item, policy.dropped)
    except KeyboardInterrupt as e:
        run.held_signals = HeldSignals()   # a second Ctrl-C must not lose the frames measured so far
        run.interrupted, run.stop = e, True
        policy.close()
    thread.join()
    return run.result(policy.dropped)
