"""The frame loop on the device's virtual clock (device_sim.loop): a discrete-event simulation whose
device columns follow from the camera's times and each frame's device time alone, never the host's."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import numpy as np
import pytest

from contract.errors import UserError
from device_sim.clock import StageTimes
from device_sim.loop import run_loop
from device_sim.work import Outcome

FPS = 20.0                     # a 50 ms period
SERVICE_MS = (5.0, 75.0, 5.0)  # pre, inference, post on the device: 85 ms, 1.7 periods
DEVICE_COLUMNS = ("index", "capture_s", "queue_ms", "preprocess_ms", "inference_ms", "postprocess_ms", "e2e_ms",
                  "deadline_met", "pred", "dropped_so_far")


class FakeWork:
    """Device time fixed per frame; the host's time is whatever `host_s()` sleeps."""

    def __init__(self, host_s=lambda: 0.0, service=SERVICE_MS):
        self.host_s, self.service = host_s, service

    def process(self, frame):
        t0 = time.perf_counter()
        time.sleep(self.host_s())
        host = (time.perf_counter() - t0) * 1e3
        pre, inf, post = self.service
        return Outcome(StageTimes(pre, inf, post, 0.0, host, 0.0), int(frame[0, 0, 0]), 1.0, True)


class FakeSource:
    def __init__(self, n=10_000):
        self.i, self.n = 0, n

    def read(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return np.full((2, 2, 3), self.i % 200, np.uint8), None


def profile(policy="latest", queue=4, deadline_ms=100.0):
    return SimpleNamespace(fps=FPS, drop_policy=policy, queue_size=queue, deadline_ms=deadline_ms)


def run(work=None, *, policy="latest", queue=4, duration_s=2.0, max_frames=None, max_speed=False, source=None):
    return run_loop(work or FakeWork(), source or FakeSource(), profile(policy, queue), duration_s=duration_s,
                    max_frames=max_frames, max_speed=max_speed)


def columns(result) -> list[tuple]:
    return [tuple(getattr(r, c) for c in DEVICE_COLUMNS) for r in result.records]


def test_latest_policy_follows_the_device_timeline():
    """Worked by hand: 85 ms of device time per frame, a frame every 50 ms, one waiting slot."""
    res = run(duration_s=0.55)                        # frames 0..10 arrive (0, 50, ..., 500 ms)
    recs = list(res.records)
    assert [r.index for r in recs] == [0, 1, 3, 5, 6, 8, 10]
    assert [round(r.queue_ms, 6) for r in recs] == [0, 35, 20, 5, 40, 25, 10]
    assert all(r.e2e_ms == pytest.approx(r.queue_ms + 85.0) for r in recs)
    assert res.captured == 11 and res.dropped == 4 and [r.dropped_so_far for r in recs] == [0, 0, 1, 2, 2, 3, 4]
    assert res.stop_reason == "duration 0.55 s reached"


def test_queue_policy_waits_up_to_its_bound_then_drops():
    res = run(policy="queue", queue=2, duration_s=3.0)
    recs = list(res.records)
    delays = np.array([r.queue_ms for r in recs])
    assert delays[0] == 0 and (np.diff(delays[:4]) > 0).all()          # the queue fills ...
    assert delays.max() <= 2 * 85.0 + 85.0 - 1e-9                      # ... at most 2 waiting + the one in flight
    assert res.dropped > 0 and res.captured == 60
    assert len(recs) == res.captured - res.dropped                     # the queue drains after capture stops
    assert [r.index for r in recs] == sorted(r.index for r in recs)    # FIFO


def test_device_columns_do_not_depend_on_the_hosts_speed():
    """The same frames through a fast host and a slow, jittery one: identical device columns (the host's
    own time is only in the _host column)."""
    rng = random.Random(0)
    fast = run(FakeWork(), duration_s=1.5)
    slow = run(FakeWork(lambda: rng.uniform(0.0, 0.004)), duration_s=1.5)
    assert columns(fast) == columns(slow) and fast.dropped == slow.dropped
    assert [r.inference_host_ms for r in fast.records] != [r.inference_host_ms for r in slow.records]


def test_a_device_faster_than_the_camera_idles_between_frames():
    res = run(FakeWork(service=(1.0, 2.0, 1.0)), duration_s=1.0)
    recs = list(res.records)
    assert res.dropped == 0 and len(recs) == 20
    assert all(r.queue_ms == 0 and r.e2e_ms == pytest.approx(4.0) for r in recs)
    assert [r.capture_s for r in recs] == pytest.approx([i / FPS for i in range(20)])


@pytest.mark.parametrize("fps", [49.0, 98.0, 103.0, 239.0, 29.97, 30.0])
def test_a_duration_takes_the_frames_due_before_it_at_any_rate(fps):
    """Frame i is due at i / fps: one due at the duration is not taken (49 * (1 / 49) < 1 let one more in)."""
    res = run_loop(FakeWork(service=(0.1, 0.1, 0.1)), FakeSource(), SimpleNamespace(
        fps=fps, drop_policy="latest", queue_size=4, deadline_ms=100.0), duration_s=1.0, max_frames=None,
        max_speed=False)
    assert res.captured == len([i for i in range(1000) if i / fps < 1.0])


def test_max_speed_takes_each_frame_when_the_device_is_free():
    res = run(max_speed=True, duration_s=1.0)
    recs = list(res.records)
    assert res.dropped == 0 and len(recs) == 12                      # 0, 85, ..., 935 ms < 1 s
    assert [r.capture_s for r in recs] == pytest.approx([i * 0.085 for i in range(12)])
    assert all(r.queue_ms == 0 for r in recs)


def test_frame_limit_and_source_end():
    assert run(max_frames=7, duration_s=None).captured == 7
    res = run(duration_s=None, source=FakeSource(5))
    assert res.captured == 5 and res.stop_reason == "source ended after 5 frames"


def test_realtime_and_max_speed_together_are_refused(tmp_path):
    from device_sim.profiles import load_profile
    from device_sim.simulate import simulate

    with pytest.raises(UserError, match="give one of them"):
        simulate(tmp_path / "m", load_profile("ar-glasses"), out=tmp_path / "o", realtime=True, max_speed=True)


def test_a_live_source_runs_in_real_time_and_a_file_does_not():
    """A camera cannot wait for the simulated device: the loop paces it on the wall clock (asked for or
    not); a replayable source runs on the virtual clock unless --realtime."""
    live = FakeSource(3)
    live.live = True
    quick = FakeWork(service=(0.1, 0.2, 0.1))
    assert run(quick, duration_s=None, source=live).clock == "wall"
    assert run(quick, duration_s=None, source=FakeSource(3)).clock == "virtual"
    paced = run_loop(quick, FakeSource(3), profile(), duration_s=None, max_frames=None, max_speed=False,
                     realtime=True)
    assert paced.clock == "wall" and len(paced.records) >= 1


def test_realtime_takes_as_many_frames_as_the_virtual_clock_in_a_duration():
    """A 0.5 s run at 20 fps is frames 0..9 on both clocks: real time also took frame 10, due at 0.5 s."""
    quick = FakeWork(service=(0.1, 0.2, 0.1))
    virtual = run(quick, duration_s=0.5)
    paced = run_loop(quick, FakeSource(), profile(), duration_s=0.5, max_frames=None, max_speed=False, realtime=True)
    assert virtual.captured == paced.captured == 10
