"""The target runner on the wearable's instruction set (aarch64 under qemu-user): outputs agree with the
host, instruction counts repeat, and the dot-product core needs fewer instructions for int8. Skipped,
with the reason, where `make arm-setup` has not built the environment (.ci/run builds it)."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error, run_cli

from contract.errors import UserError


@pytest.fixture(scope="module")
def arm_env():
    from device_sim.arm.runner import find_env

    try:
        return find_env()
    except UserError as e:
        pytest.skip(f"no aarch64 environment ({e})")


def test_int8_agrees_with_the_host_and_counts_repeat(arm_env, tiny_export):
    from device_sim.arm.fidelity import target_report

    a = target_report(arm_env, tiny_export / "int8", cpu="cortex-a53", fidelity_images=40, invokes=5)
    b = target_report(arm_env, tiny_export / "int8", cpu="cortex-a53", fidelity_images=5, invokes=5)
    assert a["fidelity"]["agreement"] >= 0.99 and a["fidelity"]["images"] == 40
    # int8 kernels may round differently per ISA: by a step or two of the output's quantum, not more
    assert a["fidelity"]["max_diff_steps"] <= 2, a["fidelity"]
    ia, ib = a["instructions"]["per_inference"], b["instructions"]["per_inference"]
    assert ia > 1e5 and ia == ib, (ia, ib)   # steady state between marks: exactly repeatable (the same 5 inputs)
    assert "7.2" in a["versions"]["emulator"] and "2.3.0" in a["versions"]["runtime"]


def test_dot_product_cores_run_int8_in_fewer_instructions(arm_env, tiny_export):
    from device_sim.arm.fidelity import target_report

    a53 = target_report(arm_env, tiny_export / "int8", cpu="cortex-a53", fidelity_images=5)
    a55 = target_report(arm_env, tiny_export / "int8", cpu="cortex-a55", fidelity_images=5)
    assert a55["core"]["dot_product"] and not a53["core"]["dot_product"]
    assert a55["instructions"]["per_inference"] < 0.8 * a53["instructions"]["per_inference"]
    assert a55["fidelity"]["agreement"] >= 0.99


def test_fp32_agrees_with_the_host(arm_env, tiny_export):
    from device_sim.arm.fidelity import target_report

    rep = target_report(arm_env, tiny_export / "fp32", cpu="cortex-a76", fidelity_images=20)
    assert rep["fidelity"]["agreement"] == 1.0 and rep["fidelity"]["max_abs_diff"] <= 1e-3


def test_cli_prints_and_writes_json(arm_env, tiny_export, tmp_path):
    proc = run_cli("target", str(tiny_export / "int8"), "--cpu", "cortex-a53", "--images", "10",
                   "--json", str(tmp_path / "t.json"), env={"EDGEVIT_ARM_DIR": str(arm_env.root)})
    assert proc.returncode == 0, proc.stderr
    assert "instructions per inference" in proc.stdout and "agreement with the host" in proc.stdout
    assert "projected latency, smartwatch" in proc.stdout   # the profile whose device has a Cortex-A53
    rep = json.loads((tmp_path / "t.json").read_text())
    assert rep["core"]["name"] == "cortex-a53" and rep["instructions"]["per_inference"] > 0
    watch = rep["projection"]["profiles"]["smartwatch"]
    assert watch["one_thread_ms"] == pytest.approx(rep["projection"]["per_ghz_one_thread_ms"] / 1.7)


def test_cli_errors(tiny_export, tmp_path):
    proc = run_cli("target", str(tiny_export / "int8"), "--arm-dir", str(tmp_path / "none"))
    assert_user_error(proc, "make arm-setup")
    from device_sim.arm.cores import get_core

    with pytest.raises(UserError, match="cortex-a53"):
        get_core("cortex-x9")


def test_simulate_projects_the_profile_core_and_caches_the_count(arm_env, tiny_export, tmp_path):
    """ar-glasses: the device's inference is the projection for its Cortex-A55 on 2 threads and its pre- and
    post-processing the projection of their own counted instructions, the same on every frame; the host's
    own times are their own columns; the counts are made once."""
    import csv

    from device_sim.arm.projection import load_calibration, project_ms

    env = {"EDGEVIT_ARM_DIR": str(arm_env.root), "EDGEVIT_CACHE_DIR": str(tmp_path / "cache")}
    args = ("simulate", "--model", str(tiny_export / "int8"), "--profile", "ar-glasses", "--frames", "40",
            "--no-video", "--max-speed")
    first = run_cli(*args, "--out", str(tmp_path / "a"), env=env)
    assert first.returncode in (0, 3), first.stderr
    assert "counting instructions per inference on cortex-a55" in first.stdout
    assert "counting pre- and post-processing instructions on cortex-a55 for 640x480 frames" in first.stdout
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    dev = report["device"]
    assert dev["kind"] == "projected" and dev["details"]["core"] == "cortex-a55"
    assert dev["details"]["arithmetic"] == "int8"     # the card's, which the int8 format set
    expected = project_ms(dev["details"]["instructions_per_inference"], "cortex-a55", 1.8, 2, load_calibration(),
                          arithmetic="int8")
    assert dev["inference_ms"] == pytest.approx(expected)
    prepost = dev["prepost_instructions"][report["model"]["name"]]["cortex-a55"]
    assert prepost["preprocess_instructions"] > 0 and prepost["postprocess_instructions"] > 0
    assert prepost["preprocess_ms"] == pytest.approx(project_ms(prepost["preprocess_instructions"], "cortex-a55", 1.8,
                                                                1, load_calibration(), arithmetic="fp32"))
    rows = list(csv.DictReader(open(tmp_path / "a" / "frames.csv")))
    for r in rows:   # the device's time, not the host's: the same on every frame
        assert float(r["inference_ms"]) == pytest.approx(expected, rel=1e-6), r
        assert float(r["preprocess_ms"]) == pytest.approx(prepost["preprocess_ms"], rel=1e-6), r
        assert float(r["postprocess_ms"]) == pytest.approx(prepost["postprocess_ms"], rel=1e-6), r
    assert len({r["inference_host_ms"] for r in rows}) > 1
    assert "projected" in report["budgets"][0]["title"]
    second = run_cli(*args, "--out", str(tmp_path / "b"), env=env)
    assert second.returncode in (0, 3) and "counting" not in second.stdout
    again = json.loads((tmp_path / "b" / "report.json").read_text())["device"]
    assert again["details"]["instructions_per_inference"] == dev["details"]["instructions_per_inference"]
