"""Extension points: a new export format, camera source or budget is one registered object, and
export.convert can be called any number of times in one process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from torch import nn

from contract.errors import EXIT_TARGETS_MISSED
from device_sim.budgets import BUDGETS, Budget, RunFacts, budget_table, register_budget
from device_sim.profiles import load_profile
from device_sim.simulate import simulate
from device_sim.sources import SOURCES, register_source
from export.formats import FORMATS, Format, Target, judge, register_format


def _small(seed: int, width: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 5)).eval()


def test_convert_twice_in_one_process(tmp_path):
    import export
    from export import convert

    a = export.convert(_small(0, 8), torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "a", formats="fp32", verbose=False)
    import export.converter  # noqa: F401 - importing the submodule must not replace the function
    import export.formats  # noqa: F401
    b = export.convert(_small(1, 12), torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "b", formats="onnx,fp32",
                       verbose=False)
    c = convert(_small(2, 4), torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "c", formats="fp32", verbose=False)
    assert callable(export.convert) and export.convert is convert
    for report in (a, b, c):
        assert report["artifacts"]["fp32"]["pass"] and report["artifacts"]["fp32"]["max_abs"] <= 1e-4
    assert (tmp_path / "b" / "model.onnx").is_file() and not (tmp_path / "a" / "model.onnx").exists()


@pytest.fixture
def toy_format():
    fmt = register_format(Format("fp32_copy", "fp32_copy/model.tflite", "the fp32 TFLite once more (test format)",
                                 build=lambda ctx: ctx.tf_models()["fp32"],
                                 targets=(Target("max_abs", "<=", 1e-4), Target("agreement", ">=", 1.0))))
    yield fmt
    FORMATS.pop(fmt.name)


def test_a_toy_format_is_one_registered_object(tmp_path, toy_format):
    report = convert_small(tmp_path / "out", "fp32_copy")
    art = report["artifacts"]["fp32_copy"]
    assert art["pass"] and set(art["checks"]) == {"max_abs", "agreement"}
    card = json.loads((tmp_path / "out" / "fp32_copy" / "model.json").read_text())
    assert card["format"] == "fp32_copy" and card["fidelity"]["max_abs"] == art["max_abs"]
    assert "| fp32_copy |" in (tmp_path / "out" / "export_report.md").read_text()


@pytest.fixture
def toy_int8_format():
    fmt = register_format(Format("int8_toy", "int8_toy/model.tflite", "the int8 TFLite once more (test format)",
                                 build=lambda ctx: ctx.int8(), targets=(Target("agreement", ">=", 0.9),),
                                 arithmetic="int8", calibration=True))
    yield fmt
    FORMATS.pop(fmt.name)


def test_a_toy_int8_format_is_projected_with_the_int8_cpi(tmp_path, toy_int8_format, monkeypatch):
    """The arithmetic is the format's, recorded in its card; the projection reads the card, never the name."""
    import device_sim.device as device
    from device_sim.arm.projection import load_calibration, project_ms
    from device_sim.model import DeployedModel
    from export.converter import convert

    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    convert(_small(0, 8), torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "out", formats="int8_toy",
            calibration=images, verbose=False)
    card = json.loads((tmp_path / "out" / "int8_toy" / "model.json").read_text())
    assert card["format"] == "int8_toy" and card["arithmetic"] == "int8"
    count = 3e6   # instructions per inference: what qemu would count (the projection is under test, not qemu)
    monkeypatch.setattr(device, "cached_instructions", lambda *a, **k: {"per_inference": count})
    monkeypatch.setattr(device, "_prepost", lambda *a, **k: {"preprocess_ms": 0.0, "postprocess_ms": 0.0})
    profile = load_profile("ar-glasses")
    timing = device.device_timing(DeployedModel.load(tmp_path / "out" / "int8_toy"), profile, log=lambda *a: None)
    cal = load_calibration()
    int8 = project_ms(count, profile.core, profile.clock_ghz, profile.threads, cal, arithmetic="int8")
    fp32 = project_ms(count, profile.core, profile.clock_ghz, profile.threads, cal, arithmetic="fp32")
    assert timing.kind == "projected" and timing.details["arithmetic"] == "int8"
    assert timing.inference_ms == pytest.approx(int8) and abs(int8 - fp32) > 0.1 * fp32


def convert_small(out, formats):
    from export.converter import convert

    return convert(_small(0, 8), torch.zeros(1, 3, 32, 32), out_dir=out, formats=formats, verbose=False)


def test_formats_must_say_what_faithful_means():
    with pytest.raises(ValueError, match="no fidelity targets"):
        register_format(Format("bare", "bare.tflite", "no targets", build=lambda ctx: None, targets=()))
    assert "bare" not in FORMATS
    with pytest.raises(ValueError, match="'agreement' was not measured"):
        judge("fp16", {"max_abs": 0.0}, None)
    int8 = judge("int8", {"agreement": 1.0}, None)            # no labels: the drop target is not evaluated
    assert int8["pass"] and int8["checks"]["accuracy_drop_pp"]["pass"] is None
    assert not judge("fp32", {"max_abs": float("nan")}, None)["pass"]


@pytest.fixture
def toy_source():
    @register_source("toy")
    class Gradient:
        """arg = number of frames; a horizontal gradient that brightens frame by frame."""
        replayable = True

        def __init__(self, spec):
            self.n, self.w, self.h, self.i, self.name = int(spec.arg), spec.width, spec.height, 0, f"toy:{spec.arg}"

        def replay(self, i):
            row = np.linspace(0, 200, self.w, dtype=np.float32) + 2 * i
            return np.repeat(np.clip(row, 0, 255).astype(np.uint8)[None, :, None], self.h, 0).repeat(3, 2)

        def read(self):
            if self.i >= self.n:
                return None
            self.i += 1
            return self.replay(self.i - 1), None

        def close(self):
            pass

    yield "toy"
    SOURCES.pop("toy")


@pytest.fixture
def toy_budget():
    budget = register_budget(Budget(
        key="preprocess_p90_ms", title="preprocess p90 (toy)", unit="ms", plot="latency",
        how="90th percentile of per-frame preprocessing", measure=lambda run: run.percentile(
            (r.preprocess_ms for r in run.records), 90)))
    yield budget
    BUDGETS.pop(budget.key)


def test_a_toy_source_and_a_toy_budget_are_one_registered_object_each(tiny_export, tmp_path, toy_source, toy_budget):
    profile_path = tmp_path / "p.toml"
    profile_path.write_text('name = "toy"\n[camera]\nwidth = 160\nheight = 120\nfps = 30\n'
                    '[device]\ncore = "host"\nthreads = 1\n'
                            "[budgets]\nlatency_ms = 1000\nmemory_mb = 4000\nmodel_size_mb = 100\n"
                            "preprocess_p90_ms = 500\n")
    lines = []
    code, report = simulate(tiny_export / "int8", load_profile(profile_path), out=tmp_path / "o", source="toy:9",
                            duration_s=None, max_speed=True, video=True, plots=True, progress=False,
                            log=lines.append)
    assert code == 0 and report["frames"]["processed"] == 9 and report["source"] == "toy:9"
    assert report["video_frames"] == 9
    row = next(b for b in report["budgets"] if b["budget"] == "preprocess_p90_ms")
    assert row["pass"] and row["limit"] == 500 and 0 < row["value"] < 500
    saved = json.loads((tmp_path / "o" / "report.json").read_text())
    assert "preprocess_p90_ms" in {b["budget"] for b in saved["budgets"]}
    assert any("preprocess p90 (toy)" in ln and "PASS" in ln for ln in "\n".join(lines).splitlines())


def test_profiles_refuse_a_budget_nobody_registered(tmp_path):
    from contract.errors import UserError

    path = tmp_path / "p.toml"
    path.write_text('name = "x"\n[camera]\nwidth = 160\nheight = 120\nfps = 30\n'
                    '[device]\ncore = "host"\nthreads = 1\n'
                    "[budgets]\nlatency_ms = 1\nmemory_mb = 1\nmodel_size_mb = 1\nbattery_mwh = 3\n")
    with pytest.raises(UserError, match="unknown key \\[budgets\\] 'battery_mwh'"):
        load_profile(path)


def test_budget_table_lists_every_row():
    facts = RunFacts(records=[], memory_mb={"peak_mb": 10.0, "device": {"total_mb": 50.0}}, model_size_mb=2.0,
                     latency_percentile=95, device="host")
    from device_sim.budgets import check_budgets

    rows = check_budgets({"latency_ms": 33.0, "memory_mb": 40.0, "model_size_mb": 8.0}, facts)
    assert [(r["budget"], r["pass"]) for r in rows] == [("latency_ms", False), ("memory_mb", False),
                                                        ("model_size_mb", True), ("invalid_output_frames", True)]
    table = budget_table(rows, "x")
    assert "n/a" in table and table.count("FAIL") == 2


def test_export_exits_nonzero_when_a_target_is_missed(tiny_run, tmp_path):
    """A classifier head scaled by 1e6 gives logits near 1e6, where float32 steps are ~0.06: the fp32
    TFLite cannot stay within 1e-4 of PyTorch. The export finishes, writes its report, and exits 3."""
    raw = torch.load(tiny_run / "best.pt", map_location="cpu", weights_only=True)
    for key in ("head.weight", "head.bias"):
        raw["state_dict"][key] = raw["state_dict"][key] * 1e6
    ckpt = tmp_path / "loud.pt"
    torch.save(raw, ckpt)
    proc = run_cli("export", str(ckpt), "--formats", "fp32", "--out", str(tmp_path / "art"))
    assert proc.returncode == EXIT_TARGETS_MISSED, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "art" / "export_report.json").read_text())
    assert report["artifacts"]["fp32"]["pass"] is False and report["artifacts"]["fp32"]["max_abs"] > 1e-4
    assert "FAIL" in proc.stdout and "fp32" in proc.stdout.splitlines()[-1]
