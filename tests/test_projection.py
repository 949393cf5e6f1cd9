"""The latency projection: its fit and leave-one-out arithmetic on synthetic counts, Amdahl's speedup,
and the calibration shipped in device_sim/arm/calibration.json (written by `make bench-arm`)."""

from __future__ import annotations

import pytest

from contract.card import card_arithmetic
from contract.errors import UserError
from device_sim.arm.projection import PUBLISHED, REFERENCE_DEVICES, fit, load_calibration, project_ms, speedup


def _counts_for(cpi: dict[str, float]) -> dict:
    """Instruction counts that make every published one-thread latency exact for the given CPI per kind."""
    from device_sim.arm.projection import _one_thread_points

    counts = {}
    for pt in _one_thread_points(PUBLISHED):
        counts[f"{pt['model']}/{pt['dtype']}/{pt['counted_on']}"] = None
    # one count per key: choose each from the first point that uses it, the others must agree
    for pt in _one_thread_points(PUBLISHED):
        key = f"{pt['model']}/{pt['dtype']}/{pt['counted_on']}"
        if counts[key] is None:
            counts[key] = pt["one_thread_ms"] * 1e6 * pt["clock_ghz"] / cpi[pt["kind"]]
    return counts


def test_fit_recovers_the_cpi_of_consistent_data():
    counts = _counts_for({"in-order": 1.5, "out-of-order": 0.6})
    cal = fit(counts)
    assert cal["cpi"]["in-order/fp32"]["cpi"] == pytest.approx(1.5)
    assert cal["cpi"]["in-order/int8"]["cpi"] == pytest.approx(1.5)
    # the three phones disagree with one count per network, so the out-of-order CPI is their median
    assert 0.5 < cal["cpi"]["out-of-order/fp32"]["cpi"] < 0.7
    rpi = [p for p in cal["points"] if p["device"] == "RPi 3 B+"]
    assert len(rpi) == 6 and all(abs(p["loo_error"]) < 1e-9 for p in rpi)


def test_leave_one_out_does_not_see_the_point_it_predicts():
    counts = _counts_for({"in-order": 1.5, "out-of-order": 0.6})
    counts["mobilenetv1_100/fp32/cortex-a53"] *= 2   # one network now needs twice the instructions
    cal = fit(counts)
    odd = next(p for p in cal["points"] if p["model"] == "mobilenetv1_100" and p["counted_on"] == "cortex-a53"
               and p["dtype"] == "fp32")
    assert odd["loo_error"] == pytest.approx(1.0)      # predicted from the others: twice the published time
    assert odd["cpi"] == pytest.approx(0.75)
    others = [p for p in cal["points"] if p["kind"] == "in-order" and p["dtype"] == "fp32" and p is not odd]
    assert len(others) == 3 and all(abs(p["loo_error"]) < 1e-9 for p in others)   # the median ignores the odd one


def test_fit_names_a_missing_count():
    counts = _counts_for({"in-order": 1.0, "out-of-order": 1.0})
    del counts["mobilenetv3_small_100/fp32/cortex-a76"]
    with pytest.raises(ValueError, match="mobilenetv3_small_100/fp32/cortex-a76"):
        fit(counts)


def test_speedup_is_amdahl():
    assert speedup(1, 0.9) == 1.0
    assert speedup(2, 0.9) == pytest.approx(1 / 0.55)
    assert speedup(4, 0.9) < 4 and speedup(64, 0.9) < 10   # bounded by 1 / (1 - p)


def test_projection_uses_the_core_kind_clock_and_threads():
    cal = {"cpi": {"in-order/fp32": {"cpi": 2.0}, "in-order/int8": {"cpi": 1.0}, "out-of-order/fp32": {"cpi": 0.5},
                   "out-of-order/int8": {"cpi": 0.25}}, "parallel_fraction": 0.9}
    assert project_ms(1e6, "cortex-a53", 1.0, 1, cal) == pytest.approx(2.0)    # 2e6 cycles at 1 GHz
    assert project_ms(1e6, "cortex-a55", 2.0, 1, cal) == pytest.approx(1.0)
    assert project_ms(1e6, "cortex-a76", 1.0, 1, cal) == pytest.approx(0.5)
    assert project_ms(1e6, "cortex-a53", 1.0, 2, cal) == pytest.approx(2.0 * 0.55)
    assert project_ms(1e6, "cortex-a55", 1.0, 1, cal, arithmetic="int8") == pytest.approx(1.0)
    with pytest.raises(UserError, match="no CPI for fp16 arithmetic"):   # never a silent guess
        project_ms(1e6, "cortex-a76", 1.0, 1, cal, arithmetic="fp16")


def test_cards_without_an_arithmetic_project_as_their_format_did():
    """Cards written before the arithmetic was recorded: int8 computes in int8, every float format
    (fp16's float16 weights run fp32 kernels) in fp32; a recorded arithmetic wins over the format's name."""
    old = [card_arithmetic({"format": f}) for f in ("fp32", "fp16", "int8", "onnx")]
    assert old == ["fp32", "fp32", "int8", "fp32"]
    assert card_arithmetic({"format": "int8_fast", "arithmetic": "int8"}) == "int8"
    assert card_arithmetic({"format": "int8", "arithmetic": "fp32"}) == "fp32"


def test_published_data_is_complete():
    devices = {d for d, *_ in PUBLISHED}
    assert devices == set(REFERENCE_DEVICES)
    singles = [r for r in PUBLISHED if r[3] == 1]
    assert len(singles) == 12 and all(r[2] == "fp32" for r in singles)
    assert {r[2] for r in PUBLISHED if r[0].startswith("RPi")} == {"fp32", "int8"}


def test_shipped_calibration_meets_its_target():
    cal = load_calibration()
    assert cal["loo_median_abs_error"] <= 0.25, cal["loo_median_abs_error"]
    assert len(cal["points"]) == 24 and 0.5 < cal["parallel_fraction"] < 1.0
    for arithmetic in ("fp32", "int8"):   # an in-order core does less per clock
        assert cal["cpi"][f"in-order/{arithmetic}"]["cpi"] > cal["cpi"][f"out-of-order/{arithmetic}"]["cpi"]
