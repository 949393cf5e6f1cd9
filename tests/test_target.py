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
    from device_sim.target.runner import find_env

    try:
        return find_env()
    except UserError as e:
        pytest.skip(f"no aarch64 environment ({e})")


def test_int8_agrees_with_the_host_and_counts_repeat(arm_env, tiny_export):
    from device_sim.target.fidelity import target_report

    a = target_report(arm_env, tiny_export / "int8", cpu="cortex-a53", fidelity_images=40, invokes=5)
    b = target_report(arm_env, tiny_export / "int8", cpu="cortex-a53", fidelity_images=5, invokes=5)
    assert a["fidelity"]["agreement"] >= 0.99 and a["fidelity"]["images"] == 40
    assert a["fidelity"]["max_abs_diff"] <= 0.05, a["fidelity"]   # int8 kernels may round differently per ISA
    ia, ib = a["instructions"]["per_inference"], b["instructions"]["per_inference"]
    assert ia > 1e5 and abs(ia - ib) / ia < 0.005, (ia, ib)
    assert "7.2" in a["versions"]["emulator"] and "2.3.0" in a["versions"]["runtime"]


def test_dot_product_cores_run_int8_in_fewer_instructions(arm_env, tiny_export):
    from device_sim.target.fidelity import target_report

    a53 = target_report(arm_env, tiny_export / "int8", cpu="cortex-a53", fidelity_images=5)
    a55 = target_report(arm_env, tiny_export / "int8", cpu="cortex-a55", fidelity_images=5)
    assert a55["core"]["dot_product"] and not a53["core"]["dot_product"]
    assert a55["instructions"]["per_inference"] < 0.8 * a53["instructions"]["per_inference"]
    assert a55["fidelity"]["agreement"] >= 0.99


def test_fp32_agrees_with_the_host(arm_env, tiny_export):
    from device_sim.target.fidelity import target_report

    rep = target_report(arm_env, tiny_export / "fp32", cpu="cortex-a76", fidelity_images=20)
    assert rep["fidelity"]["agreement"] == 1.0 and rep["fidelity"]["max_abs_diff"] <= 1e-3


def test_cli_prints_and_writes_json(arm_env, tiny_export, tmp_path):
    proc = run_cli("target", str(tiny_export / "int8"), "--cpu", "cortex-a53", "--images", "10",
                   "--json", str(tmp_path / "t.json"), env={"EDGEVIT_ARM_DIR": str(arm_env.root)})
    assert proc.returncode == 0, proc.stderr
    assert "instructions per inference" in proc.stdout and "agreement with the host" in proc.stdout
    rep = json.loads((tmp_path / "t.json").read_text())
    assert rep["core"]["name"] == "cortex-a53" and rep["instructions"]["per_inference"] > 0


def test_cli_errors(tiny_export, tmp_path):
    proc = run_cli("target", str(tiny_export / "int8"), "--arm-dir", str(tmp_path / "none"))
    assert_user_error(proc, "make arm-setup")
    from device_sim.target.cores import get_core

    with pytest.raises(UserError, match="cortex-a53"):
        get_core("cortex-x9")
