"""The camera-frame loop.

Virtual clock (the default): a discrete-event simulation of the device. Frame i arrives at i / fps on
the device's clock; the device is busy with a frame for its device time (the sum of its parts' device
times: device_sim.device, device_sim.clock.run_timed); while it is busy, arriving frames go into the
drop policy, and when it is free it takes what the policy hands it. Queueing, drops, deadlines and
end-to-end latency follow from that timeline alone, nothing sleeps, and the same inputs give the same
device columns however busy the host is. The host still runs every processed frame (predictions, the
*_host_ms columns); a dropped frame is read from the source and never processed.

Real time (--realtime, and any live source: a camera cannot be paused): a capture thread delivers
frames at the camera's fps on the wall clock into the drop policy; the inference thread takes what the
policy hands it and, after the host has run a frame, sleeps until the frame's device time has passed.
A frame the host runs slower than the device takes the host's time.

Drop policies: latest: one slot, a new frame replaces a waiting one (MediaPipe's flow limiter, one frame
in flight); queue: a bounded FIFO, a frame that finds it full is dropped, the others wait.
Max speed (--max-speed): each frame is captured when the device is free: no idling, no drops.
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

__all__ = ["FrameRecord", "LoopResult", "run_loop", "LatestSlot", "BoundedQueue", "sleep_until", "MAX_BAD_FRAMES",
           "VirtualPolicy"]

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
    clock: str = "virtual"     # "virtual": the device's own clock; "wall": paced in real time


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

    def done(self, count: int, elapsed_s: float | None = None) -> str:
        """Why capture stops before frame `count`, or "" to go on; `elapsed_s`: the clock's time (virtual), the
        frame's due time (real-time capture), or by default the wall clock since the start."""
        if self.stop:
            return "interrupted"
        if self.max_frames is not None and count >= self.max_frames:
            return f"{self.max_frames} frames reached"
        elapsed = time.perf_counter() - self.t0 if elapsed_s is None else elapsed_s
        if self.duration_s is not None and elapsed >= self.duration_s:
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
                if in_a_row >= self.max_bad_frames:   # N in a row end the run (--max-bad-frames N)
                    self.reason, self.failed = (f"source failed: {in_a_row} corrupt frame{'s' * (in_a_row != 1)} "
                                                    f"in a row ({e})"), True
                    return None
                continue
            except SourceFailed as e:
                self.reason, self.failed = f"source failed: {e}", True
                return None
            if got is None:
                self.reason = f"source ended after {self.captured} frames"
            return got

    def process(self, item: _Item, dropped: int) -> None:
        """Real time: the host runs the frame, then the rest of its device time passes on the wall clock."""
        t_start = time.perf_counter()
        out = self.work.process(item.frame)
        sleep_until(t_start + out.times.device_ms / 1e3)
        e2e = (time.perf_counter() - self.t0 - item.t) * 1e3
        self.record(item, out, (t_start - self.t0 - item.t) * 1e3, e2e, dropped)

    def process_virtual(self, item: _Item, start_s: float, dropped: int) -> float:
        """Virtual clock: the device starts the frame at `start_s`; returns when it is done with it."""
        out = self.work.process(item.frame)
        queue_ms = (start_s - item.t) * 1e3
        self.record(item, out, queue_ms, queue_ms + out.times.device_ms, dropped)
        return start_s + out.times.device_ms / 1e3

    def record(self, item: _Item, out, queue_ms: float, e2e: float, dropped: int) -> None:
        t = out.times
        rec = FrameRecord(
            index=item.index, capture_s=item.t, queue_ms=queue_ms,
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
             realtime: bool = False, on_frame=None, max_bad_frames: int = MAX_BAD_FRAMES) -> LoopResult:
    """`work` (device_sim.work): one model or a pipeline, which gives each frame's device time. On the
    virtual clock unless `realtime` or the source is live (`source.live`, device_sim.sources.base). Runs
    until the duration (device seconds on the virtual clock, wall seconds in real time) or frame count is
    reached, the source ends or fails, or Ctrl-C / SIGTERM (KeyboardInterrupt) arrives: then the frames so
    far are returned with `interrupted` set."""
    run = _Run(work, source, profile, duration_s=duration_s, max_frames=max_frames, on_frame=on_frame,
               max_bad_frames=max_bad_frames)
    if not (realtime or getattr(source, "live", False)):   # a live camera cannot wait for the simulated device
        return _virtual(run, max_speed=max_speed)
    result = _max_speed(run) if max_speed else _real_time(run)
    result.clock = "wall"
    return result


class VirtualPolicy:
    """The drop policy on the virtual clock (no threads): 'latest' keeps one waiting frame, a newer one
    replaces it; 'queue' keeps up to `size` in order and drops a frame that finds it full."""

    def __init__(self, policy: str, size: int):
        self.items: deque = deque()
        self.size = 1 if policy == "latest" else size
        self.replace = policy == "latest"
        self.dropped = 0

    def put(self, item: _Item) -> None:
        if len(self.items) >= self.size:
            self.dropped += 1
            if not self.replace:
                return
            self.items.popleft()
        self.items.append(item)

    def get(self) -> _Item | None:
        return self.items.popleft() if self.items else None


def _virtual(run: _Run, *, max_speed: bool) -> LoopResult:
    """The discrete-event loop: deliver every frame that has arrived by the time the device is free (the
    next one if none has: the device idles until it arrives), then process the one the policy hands over."""
    policy = VirtualPolicy(run.profile.drop_policy, run.profile.queue_size)
    fps, free_at, ended = run.profile.fps, 0.0, False
    try:
        while True:
            # frame i arrives at i / fps (a division: i * (1 / fps) falls short of the duration at some rates,
            # 49 * (1 / 49) < 1, and let in one frame too many)
            while not ended and (not policy.items or (not max_speed and run.captured / fps <= free_at)):
                arrival = free_at if max_speed else run.captured / fps
                if reason := run.done(run.captured, arrival):
                    run.reason, ended = reason, True
                    break
                got = run.read()
                if got is None:
                    ended = True
                    break
                policy.put(_Item(run.captured, arrival, *got))
                run.captured += 1
            item = policy.get()
            if item is None:
                break
            free_at = run.process_virtual(item, max(free_at, item.t), policy.dropped)
    except KeyboardInterrupt as e:
        run.held_signals = HeldSignals()   # a second Ctrl-C must not lose the frames measured so far
        run.interrupted = e
    return run.result(policy.dropped)


def _max_speed(run: _Run) -> LoopResult:
    """Real time: capture and inference alternate in this thread, no pacing, no drops."""
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

    def capture() -> None:
        i = 0
        while True:
            # frame i is due at i / fps: one due at or after the duration is not taken (as on the virtual
            # clock; the wall clock here, a little past frame i-1, let frame i in when it was due at the end)
            if reason := run.done(i, i / profile.fps):
                run.reason = reason
                break
            sleep_until(run.t0 + i / profile.fps)
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
