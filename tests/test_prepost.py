"""Pre- and post-processing projected like inference (device_sim.arm.prepost): the simulator's own
per-frame code counted on the target core under qemu, per frame size, cached."""

from __future__ import annotations

import pytest

from contract.errors import UserError
from device_sim.sources.photo import models_dir

DETECTOR = models_dir() / "mediapipe" / "face_detection_short_range.tflite"   # a bare .tflite: no training needed
needs_detector = pytest.mark.skipif(not DETECTOR.is_file(),
                                    reason="no MediaPipe models: run `make mediapipe-models` (make test does)")


def detector():
    from device_sim.model import BareModel, DeployedModel

    return DeployedModel.load(DETECTOR, bare=BareModel(task="raw", value_range=(-1.0, 1.0)))


@pytest.fixture(scope="module")
def arm_env():
    from device_sim.arm.runner import find_env

    try:
        env = find_env()
    except UserError as e:
        pytest.skip(f"no aarch64 environment ({e})")
    if not (env.site / "cv2").is_dir():
        pytest.skip("the aarch64 environment has no OpenCV: run `make arm-setup`")
    return env


@needs_detector
def test_count_is_deterministic_and_grows_with_the_frame(arm_env):
    """Each count in a guest run of its own (as the simulator makes them): the same frame counts the same
    twice; a 640x480 frame costs more to colour-convert and resize than a 160x120 one, while decoding the
    model's output does not see the frame."""
    from device_sim.arm.cores import get_core
    from device_sim.arm.prepost import prepost_unit
    from device_sim.arm.runner import prepost_per_invocation

    model = detector()
    core = get_core("cortex-a53")
    small, large, again = (prepost_per_invocation(arm_env, core, [prepost_unit(model, wh)])[0]
                           for wh in ((160, 120), (640, 480), (160, 120)))
    assert small == again
    assert large["preprocess"] > 1.5 * small["preprocess"] > 0, (small, large)
    assert large["postprocess"] == pytest.approx(small["postprocess"], rel=0.05)


@needs_detector
def test_counts_are_cached_per_frame_size(arm_env, tmp_path, monkeypatch):
    """A bare model's card changes at every load (its creation time): the cache must still hit."""
    from device_sim.arm import runner
    from device_sim.arm.prepost import cached_prepost, prepost_unit, project_prepost

    model = detector()
    unit = prepost_unit(model, (160, 120))
    calls = []
    monkeypatch.setattr(runner, "prepost_per_invocation",
                        lambda env, core, units, invokes: calls.append(len(units)) or
                        [{"preprocess": 1000.0 * u["frame"][0], "postprocess": 5000.0} for u in units])
    cache = tmp_path / "instructions.json"
    first = cached_prepost([unit], "cortex-a55", cache_file=cache, log=lambda *a: None)
    reloaded = prepost_unit(detector(), (160, 120))
    reloaded["card"] = {**reloaded["card"], "created": "2000-01-01T00:00:00+00:00"}   # loaded at another time
    assert cached_prepost([reloaded], "cortex-a55", cache_file=cache, log=lambda *a: None) == first
    assert calls == [1]
    cached_prepost([prepost_unit(model, (320, 240))], "cortex-a55", cache_file=cache, log=lambda *a: None)
    assert calls == [1, 1]                                 # another frame size is counted again
    ms = project_prepost(first[0], "cortex-a55", 1.8)
    assert ms["preprocess_ms"] == pytest.approx(32 * ms["postprocess_ms"])   # instructions x CPI / clock


@needs_detector
def test_the_cache_key_is_the_model_not_where_it_lies(tmp_path, monkeypatch):
    """The same .tflite named by a relative path, an absolute one, or copied under another name is one count (the
    bare card's path made a run from another folder count again, and its device columns differ)."""
    import shutil

    from device_sim.arm.prepost import _key, prepost_unit
    from device_sim.model import BareModel, DeployedModel

    versions = {"runtime": "r", "emulator": "e"}
    copy = tmp_path / "my-detector.tflite"
    shutil.copy(DETECTOR, copy)
    keys = {_key(prepost_unit(DeployedModel.load(p, bare=BareModel(task="raw", value_range=(-1.0, 1.0))),
                              (160, 120)), "cortex-a55", versions)
            for p in (DETECTOR, DETECTOR.resolve(), copy)}
    assert len(keys) == 1


def test_the_cache_key_covers_the_code_the_guest_runs():
    """Every module of device_sim/ and contract/ the guest's per-frame work loads that holds pre- or
    post-processing (the task kinds' decoders above all) is in the key: a change to it is counted again."""
    import subprocess
    import sys
    from pathlib import Path

    from device_sim.arm.prepost import _ROOT, CODE_COUNTED

    probe = ("import sys; import device_sim.arm.prepost_guest as g; import device_sim.model, device_sim.stages, "
             "device_sim.pipelines, device_sim.tasks; "
             "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))")
    files = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=_ROOT)
    loaded = {Path(f).resolve().relative_to(_ROOT).as_posix() for f in files.stdout.split()
              if Path(f).resolve().is_relative_to(_ROOT)}
    per_frame = {f for f in loaded if f.startswith(("device_sim/tasks/", "device_sim/decode/")) and
                 not f.endswith("decode/__init__.py")}
    assert per_frame and per_frame <= set(CODE_COUNTED), sorted(per_frame - set(CODE_COUNTED))


@needs_detector
@pytest.mark.parametrize("corrupt", ["negative", "string", "infinite", "huge", "missing", "not-an-object", "list",
                                     "fifo", "tiny", "huge-int", "nested", "nan-elsewhere", "plausible", "edited"])
def test_a_cache_entry_this_code_did_not_write_is_counted_again(arm_env, tmp_path, monkeypatch, corrupt):
    """A hand-edited cache (a negative count made a negative latency PASS; other shapes were tracebacks, a FIFO
    by its name hung; a plausible 1001 made every latency 0.00 ms and PASS) is counted again, never trusted."""
    import json
    import os

    from device_sim.arm import runner
    from device_sim.arm.count_cache import seal
    from device_sim.arm.prepost import _key, cached_prepost, prepost_unit

    unit = prepost_unit(detector(), (160, 120))
    calls = []
    monkeypatch.setattr(runner, "prepost_per_invocation", lambda env, core, units, invokes: calls.append(1) or
                        [{"preprocess": 9000.0, "postprocess": 5000.0} for _ in units])
    cache = tmp_path / "instructions.json"
    key = _key(unit, "cortex-a55", arm_env.versions())
    good = {"preprocess": 9000.0, "postprocess": 5000.0}
    entry = {"negative": {**good, "postprocess": -1e9}, "string": {**good, "preprocess": "abc"},
             "infinite": {**good, "postprocess": float("inf")}, "huge": {**good, "preprocess": 1e300},
             "missing": {"preprocess": 9000.0}, "not-an-object": 5, "tiny": {**good, "preprocess": 1.0},
             "huge-int": {**good, "preprocess": 10 ** 400}, "plausible": {"preprocess": 1001, "postprocess": 1001},
             "edited": {**seal(key, {"preprocess": 9000.0, "postprocess": 5000.0}), "preprocess": 1001}}.get(corrupt)
    if corrupt == "fifo":
        os.mkfifo(cache)
    elif corrupt == "nested":
        cache.write_text("[" * 200_000 + "]" * 200_000)
    elif corrupt == "nan-elsewhere":   # another model's junk must not stop this count being saved
        cache.write_text('{"other/cortex-a55/x": {"per_inference": NaN}}')
    else:
        cache.write_text(json.dumps([] if corrupt == "list" else {key: entry}))
    got = cached_prepost([unit], "cortex-a55", cache_file=cache, log=lambda *a: None)
    assert calls == [1] and got[0]["preprocess"] == 9000.0 and got[0]["postprocess"] == 5000.0
    if corrupt != "fifo":   # what it cached is used from now on (a FIFO by its name caches nothing)
        assert cached_prepost([unit], "cortex-a55", cache_file=cache, log=lambda *a: None) == got and calls == [1]
    assert cache.is_fifo() == (corrupt == "fifo")    # a FIFO by its name is left alone, not replaced or read
    if corrupt != "fifo":
        assert key in json.loads(cache.read_text()), "the new count is cached"


@needs_detector
def test_an_aarch64_run_that_times_out_is_one_line(arm_env, monkeypatch):
    from device_sim.arm import runner
    from device_sim.arm.cores import get_core
    from device_sim.arm.prepost import prepost_unit

    monkeypatch.setattr(runner, "GUEST_TIMEOUT_S", 0.01)
    with pytest.raises(UserError, match="did not finish within 0.01 s"):
        runner.prepost_per_invocation(arm_env, get_core("cortex-a55"), [prepost_unit(detector(), (160, 120))])


def test_the_clock_note_says_when_host_timed_parts_make_a_run_vary():
    """On the virtual clock, timings repeat whatever the host's load only when every part is projected; a part
    the host timed (no aarch64 environment, a host profile) is named."""
    from types import SimpleNamespace

    from device_sim.simulate import CLOCKS, _clock

    projected = SimpleNamespace(timing=SimpleNamespace(inference_ms=1.0, pre_ms=0.5, post_ms=0.1))
    assert _clock("virtual", projected) == CLOCKS["virtual"]
    fixed = SimpleNamespace(timing=SimpleNamespace(inference_ms=10.0, pre_ms=None, post_ms=None))
    note = _clock("virtual", fixed)
    assert note["host_timed"] == ["preprocessing", "postprocessing"] and "vary with the host's load" in note["note"]
    stages = SimpleNamespace(stages=[SimpleNamespace(name="det", timing=projected.timing),
                                     SimpleNamespace(name="lm", timing=SimpleNamespace(inference_ms=None, pre_ms=1.0,
                                                                                       post_ms=1.0))])
    assert _clock("virtual", stages)["host_timed"] == ["lm inference"]


def test_a_symlinked_cache_is_written_through(tmp_path):
    """A cache file kept elsewhere behind a link: the link stays a link and its target gets the counts (the link was
    replaced by a regular file, its target left stale); a broken link is left alone with a note."""
    import json

    from device_sim.arm.count_cache import save_cache

    real, link = tmp_path / "real.json", tmp_path / "instructions.json"
    real.write_text("{}")
    link.symlink_to(real)
    save_cache(link, {"k": {"per_inference": 5000.0}}, log=lambda *a: None)
    assert link.is_symlink() and json.loads(real.read_text()) == {"k": {"per_inference": 5000.0}}
    real.unlink()
    notes = []
    save_cache(link, {"k": {"per_inference": 5000.0}}, log=notes.append)
    assert link.is_symlink() and not real.exists() and "broken symbolic link" in notes[0]
