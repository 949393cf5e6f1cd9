"""Ctrl-C and SIGTERM: partial results where measurements exist, nothing half-written, no process or
temp folder left behind; --resume continues a run as if it had never stopped; NaN never passes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import run_cli, start_cli
from torch import nn

from contract.errors import EXIT_INTERRUPTED, EXIT_TERMINATED


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float = 300) -> list[str]:
    seen, t0 = [], time.time()
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return seen
        if time.time() - t0 > timeout:
            break
    raise AssertionError(f"{needle!r} never appeared:\n{''.join(seen)}")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)])
def test_interrupted_simulation_writes_a_partial_report(tiny_export, tmp_path, sig, code):
    out = tmp_path / "sim"
    earlier = run_cli("simulate", "--model", str(tiny_export / "int8"), "--frames", "30", "--out", str(out))
    assert earlier.returncode == 0 and (out / "demo.mp4").is_file()
    proc = start_cli("simulate", "--model", str(tiny_export / "int8"), "--duration", "10", "--core", "host",
                     "--realtime", "--out", str(out))
    _wait_for(proc, "simulating")
    time.sleep(2.0)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is True and report["stop_reason"] == ("interrupted" if code == 130 else "terminated")
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == report["frames"]["processed"] > 20     # ~2 s at 30 fps
    assert not (out / "demo.mp4").exists(), "the earlier run's video must not survive beside the new report"
    assert (out / "latency.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["sim"], "no staging folder or lock left behind"


def test_ctrl_c_reaches_the_child_when_the_tests_run_as_a_background_job(tiny_export, tmp_path):
    """`make test &`: the shell starts pytest with SIGINT ignored and children inherit that; start_cli
    gives its child the default disposition back, so the interrupt tests hold on any machine."""
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)          # as a background job's pytest has it
    try:
        proc = start_cli("simulate", "--model", str(tiny_export / "int8"), "--duration", "10", "--core", "host",
                         "--no-video", "--realtime", "--out", str(tmp_path / "sim"))
    finally:
        signal.signal(signal.SIGINT, saved)
    _wait_for(proc, "simulating")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr


def _tagged_processes(tag: str) -> list[str]:
    """Processes (any descendant of a child we started, even one re-parented after its parent died) whose
    environment carries `tag`: this test's own process tree, never another export on the machine."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read()
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"EDGEVIT_TEST_TAG={tag}".encode() in environ.split(b"\0"):
            found.append(f"{pid} {cmdline}")
    return found


def test_sigterm_during_export_cleans_up(tiny_run, tmp_path):
    own_tmp, out = tmp_path / "tmp", tmp_path / "out"
    own_tmp.mkdir()
    out.mkdir()
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    proc = start_cli("export", str(tiny_run / "best.pt"), "--out", str(out / "art"),
                     env={"TMPDIR": str(own_tmp), "EDGEVIT_TEST_TAG": tag})
    _wait_for(proc, "onnx ")          # the first step's line: the converter worker starts next
    time.sleep(3.0)
    assert any("export.tf_worker" in p for p in _tagged_processes(tag)), "the test must reach the converter worker"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_TERMINATED, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == [], "no staging folder, lock or partial export"
    assert not list(own_tmp.glob("edgevit-export-*")), "the converter's temp folder is removed"
    time.sleep(0.5)
    assert not _tagged_processes(tag), "converter worker still running"


def test_train_twice_refuses_and_resume_matches_an_uninterrupted_run(tiny_run, tmp_path):
    out = tmp_path / "run"
    args = ("train", "--model", "edgevit_xxs", "--epochs", "5", "--no-progress", "--out", str(out))
    proc = start_cli(*args)
    _wait_for(proc, "epoch   2/5")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    again = run_cli(*args)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli("train", "--resume", "--no-progress", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "epoch   1/5" not in resumed.stdout
    log = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["epoch"]) for r in log] == [1, 2, 3, 4, 5]
    mine = json.loads((out / "metrics.json").read_text())["model"]
    reference = json.loads((tiny_run / "metrics.json").read_text())["model"]   # same recipe, uninterrupted
    assert abs(mine["test_acc"] - reference["test_acc"]) <= 0.005, (mine["test_acc"], reference["test_acc"])


def test_a_diverging_run_fails_and_saves_no_nan(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--model", "edgevit_xxs", "--epochs", "2", "--lr", "1e30", "--warmup-epochs", "0",
                   "--no-progress", "--out", str(out))
    assert proc.returncode == 2 and "diverged" in proc.stderr and "Traceback" not in proc.stderr
    for ckpt in out.glob("*.pt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), ckpt


def test_a_nan_output_model_fails_simulate(tmp_path):
    """A classifier whose head is NaN: export publishes it marked FAIL (exit 3); simulate counts every
    frame as invalid and fails its budgets (exit 3)."""
    from export.converter import convert

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        model[3].weight.fill_(float("nan"))
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    report = convert(model, torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "art", formats="fp32", verbose=False,
                     sample_pack=(images, np.zeros(16, np.int64)))
    assert report["artifacts"]["fp32"]["pass"] is False
    proc = run_cli("simulate", "--model", str(tmp_path / "art" / "fp32"), "--frames", "20", "--max-speed",
                   "--no-video", "--out", str(tmp_path / "sim"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    sim = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert sim["invalid_outputs"] == 20 and not sim["pass"]
    assert any(b["budget"] == "invalid_output_frames" and not b["pass"] for b in sim["budgets"])
