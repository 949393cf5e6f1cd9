"""The whole pipeline as a user runs it, in the default suite: train tiny -> export int8 -> simulate."""

from __future__ import annotations

import json

from conftest import run_cli


def test_train_export_simulate(tiny_run, tiny_export, tmp_path):
    # tiny_run and tiny_export ran `edgevit train` and `edgevit export` through the CLI
    metrics = json.loads((tiny_run / "metrics.json").read_text())["model"]
    assert metrics["test_acc"] >= 0.9
    export = json.loads((tiny_export / "export_report.json").read_text())
    assert export["artifacts"]["int8"]["pass"]
    out = tmp_path / "sim"
    proc = run_cli("simulate", "--model", str(tiny_export / "int8"), "--profile", "ar-glasses", "--duration", "3",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["format"] == "int8" and report["profile"]["name"] == "ar-glasses"
    assert report["frames"]["processed"] >= 60 and report["pass"]
    # the live camera sees the same digits as the test split: accuracy carries over from the export
    assert report["accuracy"] >= export["artifacts"]["int8"]["accuracy"] - 0.1
    for f in ("frames.csv", "latency.png", "memory.png", "demo.mp4"):
        assert (out / f).is_file()
    assert "PASS" in proc.stdout and str(out / "report.json") in proc.stdout
    # the glasses' latency is projected for their Cortex-A55 where `make arm-setup` built the aarch64 runtime
    from contract.errors import UserError
    from device_sim.arm.runner import find_env

    try:
        find_env()
        assert report["device"]["kind"] == "projected", report["device"]
    except UserError:
        assert report["device"]["label"] == "host (no projection)"
