"""device_sim: profiles, sidecar checks, sources, the frame loop, budgets, outputs and drop policies."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from contract.errors import UserError
from device_sim.model import DeployedModel
from device_sim.profiles import builtin_profiles, load_profile
from device_sim.simulate import apply_overrides, simulate

PROFILE = """
name = "test"
[camera]
width = {w}
height = {h}
fps = {fps}
[device]
core = "{core}"
threads = 1
{device_extra}
[pipeline]
drop_policy = "{policy}"
queue_size = {queue}
[budgets]
latency_percentile = 95
latency_ms = {latency}
memory_mb = {memory}
model_size_mb = {size}
"""


def write_profile(tmp_path, name="p.toml", **kw):
    values = dict(w=320, h=240, fps=30, core="host", device_extra="", policy="latest", queue=4, latency=1000,
                  memory=4000, size=100)
    values.update(kw)
    path = tmp_path / name
    path.write_text(PROFILE.format(**values))
    return path


def quiet(*args, **kwargs):
    pass


# -- profiles ---------------------------------------------------------------------------------------
def test_builtin_profiles_load():
    assert {"ar-glasses", "smartwatch", "phone"} <= set(builtin_profiles())
    ar = load_profile("ar-glasses")
    assert (ar.camera_width, ar.camera_height, ar.fps, ar.threads) == (640, 480, 30, 2)
    assert (ar.core, ar.clock_ghz, ar.projected) == ("cortex-a55", 1.8, True)
    assert ar.budgets == {"latency_ms": 33, "memory_mb": 64, "model_size_mb": 8} and ar.latency_percentile == 95
    watch = load_profile("smartwatch")
    assert watch.threads == 1 and watch.fps == 15 and watch.budgets["memory_mb"] < ar.budgets["memory_mb"]
    assert watch.core == "cortex-a53" and load_profile("phone").core == "cortex-a76"


@pytest.mark.parametrize("edit,fragment", [
    (lambda s: s.replace("fps = 30", "fps = 30\nexposure = 3"), "unknown key [camera] 'exposure'"),
    (lambda s: s + "\n[gpu]\ncores = 2\n", "unknown section [gpu]"),
    (lambda s: s.replace("threads = 1", "threads = 0"), "threads = 0 is out of range"),
    (lambda s: s.replace("fps = 30", 'fps = "fast"'), "fps must be float"),
    (lambda s: s.replace("fps = 30", "fps = 5e-324"), ">= 0.001"),   # 1000 / fps overflowed to inf in the report
    (lambda s: s.replace('drop_policy = "latest"', 'drop_policy = "oldest"'), "drop_policy"),
    (lambda s: s.replace("latency_ms = 1000", ""), "missing latency_ms"),
    (lambda s: s.replace("[camera]", "[camera"), "not valid TOML"),
    (lambda s: s.replace('core = "host"', 'core = "cortex-m4"'), "core = 'cortex-m4' is out of range (one of"),
    (lambda s: s.replace('core = "host"', 'core = "cortex-a55"'), "missing [device] clock_ghz"),
    (lambda s: s.replace('core = "host"', 'core = "cortex-a55"\nclock_ghz = 99'), "clock_ghz = 99.0 is out of range"),
    (lambda s: s.replace("threads = 1", "threads = 1\nslowdown = 3"), "unknown key [device] 'slowdown'"),
])
def test_invalid_profiles_are_named(tmp_path, edit, fragment):
    path = write_profile(tmp_path)
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError) as e:
        load_profile(path)
    assert fragment in str(e.value)


def test_unknown_profile_lists_builtins(tmp_path):
    with pytest.raises(UserError, match="ar-glasses"):
        load_profile("hololens")
    with pytest.raises(UserError, match="does not exist"):
        load_profile(tmp_path / "missing.toml")


# -- the sidecar contract ---------------------------------------------------------------------------
def _copy_artifact(tiny_export, tmp_path):
    dest = tmp_path / "art"
    shutil.copytree(tiny_export, dest)
    return dest


def test_model_json_errors(tiny_export, tmp_path):
    art = _copy_artifact(tiny_export, tmp_path)
    with pytest.raises(UserError, match="model.json not found"):
        DeployedModel.load(tmp_path)
    side = art / "int8" / "model.json"
    good = side.read_text()
    side.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        DeployedModel.load(art / "int8")
    bad = json.loads(good)
    del bad["input"]
    side.write_text(json.dumps(bad))
    with pytest.raises(UserError, match="'input'"):
        DeployedModel.load(art / "int8")
    bad = json.loads(good)
    bad["input"]["shape"] = [1, 3, 64, 64]
    side.write_text(json.dumps(bad))
    with pytest.raises(UserError, match="input.shape"):
        DeployedModel.load(art / "int8")
    side.write_text(good)
    tfl = art / "int8" / "model.tflite"
    data = bytearray(tfl.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tfl.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        DeployedModel.load(art / "int8")
    tfl.unlink()
    with pytest.raises(UserError, match="missing"):
        DeployedModel.load(art / "int8")
    with pytest.raises(UserError, match="threads"):
        DeployedModel.load(tiny_export / "int8", threads=0)


def test_preprocess_follows_the_sidecar(tiny_export):
    m = DeployedModel.load(tiny_export / "int8")
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = (255, 0, 0)          # blue (BGR) center square, black side bars
    x = m.preprocess(frame)
    assert x.shape == (1, 64, 64, 3) and x.dtype == np.uint8
    assert (x[0, :, :, 2] == 255).all() and (x[0, :, :, :2] == 0).all()  # cropped to the square, BGR -> RGB
    f32 = DeployedModel.load(tiny_export / "fp32").preprocess(frame)
    assert f32.dtype == np.float32 and f32.max() == 255.0


# -- sources ----------------------------------------------------------------------------------------
def test_bad_sources(tiny_export, tmp_path):
    profile = load_profile(write_profile(tmp_path))
    run = lambda source: simulate(tiny_export / "int8", profile, out=tmp_path / "o", source=source,  # noqa: E731
                                  max_frames=5, max_speed=True, video=False, plots=False, progress=False, log=quiet)
    with pytest.raises(UserError, match="does not exist"):
        run(f"video:{tmp_path / 'none.mp4'}")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is text, not a video")
    with pytest.raises(UserError, match="not a video"):
        run(f"video:{not_video}")
    with pytest.raises(UserError, match="camera index 57 does not open"):
        run("camera:57")
    with pytest.raises(UserError, match="sample pack"):
        simulate(tiny_export / "int8", profile, out=tmp_path / "o", samples=tmp_path / "no.npz", max_frames=5,
                 max_speed=True, video=False, plots=False, progress=False, log=quiet)
    assert not (tmp_path / "o").exists(), "nothing is written when no frame was processed"


def test_video_source_ends_cleanly(tiny_export, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in range(25):
        writer.write(np.full((240, 320, 3), 10 * i, np.uint8))
    writer.release()
    profile = load_profile(write_profile(tmp_path))
    code, report = simulate(tiny_export / "int8", profile, out=tmp_path / "o", source=f"video:{video}",
                            duration_s=None, max_speed=True, video=True, plots=False, progress=False, log=quiet)
    assert code == 0 and not report["partial"]
    assert report["frames"]["processed"] == 25 and "source ended" in report["stop_reason"]
    assert report["accuracy"] is None and report["video_frames"] == 25


def test_folder_source_with_labels_and_a_corrupt_image(tiny_export, tmp_path):
    pack = np.load(tiny_export / "samples.npz")
    root = tmp_path / "frames"
    for i in range(12):
        label = str(pack["labels"][i])
        (root / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / label / f"{i:03d}.png"), cv2.cvtColor(pack["images"][i], cv2.COLOR_RGB2BGR))
    profile = load_profile(write_profile(tmp_path))
    code, report = simulate(tiny_export / "int8", profile, out=tmp_path / "ok", source=f"folder:{root}",
                            duration_s=None, max_speed=True, video=False, plots=False, progress=False, log=quiet)
    assert code == 0 and report["frames"]["processed"] == 12 and report["labelled_frames"] == 12
    assert report["accuracy"] >= 0.8
    files = sorted(root.rglob("*.png"))
    files[6].write_bytes(b"broken")   # the 7th image in reading order
    code, report = simulate(tiny_export / "int8", profile, out=tmp_path / "skip", source=f"folder:{root}",
                            duration_s=None, max_speed=True, video=True, plots=False, progress=False, log=quiet)
    assert code == 0 and report["partial"] is False      # a real camera app skips one bad frame
    assert report["frames"]["processed"] == 11 and report["bad_frames"]["count"] == 1
    assert "cannot read image" in report["bad_frames"]["examples"][0] and report["video_frames"] == 11
    saved = json.loads((tmp_path / "skip" / "report.json").read_text())
    assert saved["bad_frames"]["count"] == 1 and saved["labelled_frames"] == 11


# -- budgets and outputs ----------------------------------------------------------------------------
def test_budgets_pass_and_fail(tiny_export, tmp_path):
    ok = load_profile(write_profile(tmp_path, "ok.toml"))
    code, report = simulate(tiny_export / "int8", ok, out=tmp_path / "ok", max_frames=30, max_speed=True,
                            video=False, plots=False, progress=False, log=quiet)
    assert code == 0 and report["pass"]
    tight = load_profile(write_profile(tmp_path, "tight.toml", memory=0.5, size=0.5))
    code, report = simulate(tiny_export / "int8", tight, out=tmp_path / "tight", max_frames=30, max_speed=True,
                            video=False, plots=False, progress=False, log=quiet)
    assert code == 3 and not report["pass"]
    failed = {b["budget"] for b in report["budgets"] if not b["pass"]}
    assert failed == {"memory_mb", "model_size_mb"}


def test_cli_exit_code_names_the_failing_budget(tiny_export, tmp_path):
    from conftest import run_cli

    tight = write_profile(tmp_path, "tight.toml", size=0.5)
    proc = run_cli("simulate", "--model", str(tiny_export / "int8"), "--profile", str(tight), "--frames", "20",
                   "--max-speed", "--no-video", "--out", str(tmp_path / "o"))
    assert proc.returncode == 3
    line = next(ln for ln in proc.stdout.splitlines() if "model file size" in ln)
    assert line.rstrip().endswith("FAIL")


def test_outputs_open(tiny_export, tmp_path):
    """report.json, frames.csv, both PNGs and an MP4 whose frame count is the processed frames."""
    profile = apply_overrides(load_profile("ar-glasses"), core="host")
    code, report = simulate(tiny_export / "int8", profile, out=tmp_path / "o", duration_s=2.0, progress=False,
                            log=quiet)
    out = tmp_path / "o"
    for name in ("latency.png", "memory.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 200
    rows = (out / "frames.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + report["frames"]["processed"]
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    assert decoded == report["frames"]["processed"] == report["video_frames"] > 30
    for key in ("p50", "p90", "p95", "p99", "max", "mean", "std", "jitter"):
        assert key in report["latency_ms"]["end_to_end"]
    for key in ("achieved_fps", "drop_rate", "deadline_miss_rate", "accuracy", "memory_mb", "host", "runtime"):
        assert report[key] is not None, key
    assert report["accuracy"] >= 0.8
    assert {"before_load_mb", "after_allocate_mb", "peak_mb"} <= set(report["memory_mb"])
    dev = report["memory_mb"]["device"]   # as the device counts it: not the simulator's Python
    assert dev["model_file_mb"] == pytest.approx(report["model"]["size_mb"])
    assert dev["camera_buffers_mb"] == pytest.approx(2 * 640 * 480 * 3 / 1e6)   # latest: one waiting, one in work
    assert 0 < dev["runtime_mb"] and dev["total_mb"] < report["memory_mb"]["peak_mb"] - 40
    assert next(b for b in report["budgets"] if b["budget"] == "memory_mb")["value"] == dev["total_mb"]
    assert report["device"]["kind"] == "host" and "host" in report["budgets"][0]["title"]


def test_without_the_arm_environment_latency_is_the_hosts_and_says_so(tiny_export, tmp_path):
    from conftest import run_cli

    proc = run_cli("simulate", "--model", str(tiny_export / "int8"), "--profile", "ar-glasses", "--frames", "10",
                   "--max-speed", "--no-video", "--out", str(tmp_path / "o"), env={"EDGEVIT_ARM_DIR": str(tmp_path)})
    assert proc.returncode in (0, 3), proc.stderr
    assert "latency is this host's, not projected for cortex-a55" in proc.stdout and "make arm-setup" in proc.stdout
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["device"]["kind"] == "host" and report["device"]["inference_ms"] is None
    assert report["budgets"][0]["title"].endswith("(end-to-end, host)")
    assert report["device"]["label"] == "host (no projection)"


# -- drop policies ----------------------------------------------------------------------------------
def _simulate_cli(model, profile, out, *args) -> dict:
    """A simulator run as users start it, in a process of its own: the test runner's own threads
    (torch's OpenMP pool) would otherwise share the two cores with the measured loop."""
    from conftest import run_cli

    proc = run_cli("simulate", "--model", str(model), "--profile", str(profile), "--no-video", "--out", str(out),
                   *args)
    assert proc.returncode in (0, 3), proc.stderr
    return json.loads((out / "report.json").read_text())


DROP_FPS = 20.0
TWO_PERIODS = "inference_ms = 85.0"   # the device's inference takes 1.7 frame periods at 20 fps (a what-if)


def test_latest_policy_drops_about_half_and_bounds_latency(tiny_export, tmp_path):
    """Judged against the service time this very run achieved: under 'latest' the loop never idles while
    a frame waits, so the share of frames processed is period / service time; only the newest frame
    waits, never more than a period."""
    import csv

    period = 1000.0 / DROP_FPS
    profile = write_profile(tmp_path, "latest.toml", fps=DROP_FPS, device_extra=TWO_PERIODS)
    report = _simulate_cli(tiny_export / "int8", profile, tmp_path / "latest", "--duration", "5")
    rows = list(csv.DictReader(open(tmp_path / "latest" / "frames.csv")))
    busy = np.array([float(r["preprocess_ms"]) + float(r["inference_ms"]) + float(r["postprocess_ms"]) for r in rows])
    inference = np.array([float(r["inference_ms"]) for r in rows])
    assert abs(np.median(inference) - 85.0) < 3.0 and report["device"]["kind"] == "fixed"   # the device's time
    assert np.median([float(r["inference_host_ms"]) for r in rows]) < 20.0                  # ... not the host's
    expected = 1.0 - period / busy.mean()
    assert abs(report["drop_rate"] - expected) < 0.06, (report["drop_rate"], expected)
    assert report["latency_ms"]["queue"]["p95"] < 1.1 * period   # only the newest frame ever waits
    e2e_p95 = report["latency_ms"]["end_to_end"]["p95"]
    assert e2e_p95 < period + np.percentile(busy, 95) + 2.0, (e2e_p95, np.percentile(busy, 95))


def test_queue_policy_delay_grows_to_its_bound(tiny_export, tmp_path):
    fps, bound = DROP_FPS, 4
    period = 1000.0 / fps
    profile = write_profile(tmp_path, "queue.toml", fps=fps, device_extra=TWO_PERIODS, policy="queue", queue=bound)
    report = _simulate_cli(tiny_export / "int8", profile, tmp_path / "queue", "--duration", "5")
    import csv

    rows = list(csv.DictReader(open(tmp_path / "queue" / "frames.csv")))
    delays = np.array([float(r["queue_ms"]) for r in rows])
    busy = np.array([float(r["preprocess_ms"]) + float(r["inference_ms"]) + float(r["postprocess_ms"]) for r in rows])
    inference = float(np.median([float(r["inference_ms"]) for r in rows]))
    # a frame can only wait for the frames ahead of it: at most `bound` queued plus the one in flight
    ahead = np.array([busy[max(0, i - bound - 1):i].sum() for i in range(len(busy))])
    third = len(delays) // 3
    assert delays[0] < period                             # starts empty
    assert (np.diff(delays[:bound + 1]) > 0).all(), delays[:bound + 2]   # grows frame after frame ...
    assert (delays <= ahead + 5.0).all(), (delays - ahead).max()   # ... up to the bound, not beyond
    assert delays[-third:].mean() >= (bound - 1.5) * inference         # and stays near it
    assert report["drop_rate"] > 0.2                      # a full queue drops


@pytest.mark.parametrize("args,fragment", [
    (["--threads", "0"], "--threads must be 1..64"),
    (["--profile", "hololens"], "unknown profile"),
    (["--source", "camera:57"], "camera index 57 does not open"),
])
def test_cli_bad_input_is_one_line(tiny_export, tmp_path, args, fragment):
    from conftest import assert_user_error, run_cli

    proc = run_cli("simulate", "--model", str(tiny_export / "int8"), "--frames", "5", "--out", str(tmp_path / "o"),
                   *args)
    assert_user_error(proc, fragment)
    assert not (tmp_path / "o").exists()


def test_device_memory_is_measured_once_and_then_repeats_exactly(tiny_export, tmp_path, monkeypatch):
    """Resident memory varies by a page or two between processes (17.702912 vs 17.707008 MB for one pipeline):
    a memory budget at its limit could flip between two runs of one simulation. The measurement is cached per
    model hashes, threads and runtime; an entry edited by hand is measured again."""
    from device_sim import footprint

    monkeypatch.setenv("EDGEVIT_CACHE_DIR", str(tmp_path / "cache"))
    tflite = tiny_export / "int8" / "model.tflite"
    calls = []
    real = footprint._measure_fresh
    monkeypatch.setattr(footprint, "_measure_fresh", lambda *a: calls.append(a) or real(*a))
    first = footprint.measure_runtime([tflite], 1)
    assert footprint.measure_runtime([tflite], 1) == first and len(calls) == 1
    assert first["runtime_mb"] > 0 and len(first["per_model_mb"]) == 1
    footprint.measure_runtime([tflite], 2)                       # other threads: measured for themselves
    assert len(calls) == 2
    path = tmp_path / "cache" / "footprint.json"
    cache = json.loads(path.read_text())
    for entry in cache.values():
        entry["runtime_mb"] = 0.001                              # a plausible number by hand: not trusted
    path.write_text(json.dumps(cache))
    footprint.measure_runtime([tflite], 1)
    assert len(calls) == 3
    from device_sim.arm.count_cache import seal

    for forged in ({"runtime_mb": -1e9, "after_mb": -1e9 + first["before_mb"]}, {"per_model_mb": ["x"]}):
        cache = json.loads(path.read_text())   # edited and sealed again as this code would: still not a measurement
        cache = {k: seal(k, {**v, **forged}) for k, v in cache.items()}
        path.write_text(json.dumps(cache))
        footprint.measure_runtime([tflite], 1)
    assert len(calls) == 5
