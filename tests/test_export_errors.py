"""Export bad input: one-line errors, non-zero exit, and never a partial artifact."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, assert_user_error, run_cli
from torch import nn

import export.converter as convert_mod
from export.converter import convert
from export.tflite_convert import NotConvertibleError


class ErfNet(nn.Module):
    """torch.erf exports to ONNX Erf, which TFLite can only run as the Select-TF op FlexErf."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.erf(self.conv(x)).mean((2, 3)))


def _no_artifacts(folder):
    return not folder.exists() and not list(folder.parent.glob(f".{folder.name}.partial-*"))


@pytest.mark.parametrize("fmt,fragment", [("fp32", "FlexErf"), ("int8", "Erf")])
def test_unconvertible_op_is_named_and_nothing_is_written(tmp_path, fmt, fragment):
    out = tmp_path / "out"
    calib = np.zeros((4, 32, 32, 3), np.uint8) if fmt == "int8" else None
    with pytest.raises(NotConvertibleError, match=fragment) as e:
        convert(ErfNet().eval(), torch.zeros(1, 3, 32, 32), out_dir=out, formats=fmt, calibration=calib, verbose=False)
    assert "\n" not in str(e.value)
    assert _no_artifacts(out)


def test_unconvertible_op_through_the_cli_error_path(tmp_path):
    """The same failure, surfaced the way every edgevit command reports user errors."""
    script = f"""
import sys, torch
sys.path.insert(0, {str(ROOT / 'tests')!r})
from test_export_errors import ErfNet
from contract.errors import run_command
from export.converter import convert
sys.exit(run_command(lambda: convert(ErfNet().eval(), torch.zeros(1, 3, 32, 32),
         out_dir={str(tmp_path / 'out')!r}, formats="fp32", verbose=False), prog="edgevit export"))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert_user_error(proc, "FlexErf")
    assert proc.returncode == 2 and _no_artifacts(tmp_path / "out")


def test_failure_half_way_leaves_nothing_and_keeps_the_previous_export(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text("an older, complete export")

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash during int8 calibration")

    monkeypatch.setattr(convert_mod, "saved_model_to_int8", boom)
    with pytest.raises(RuntimeError, match="simulated"):   # force: the folder holds a file export did not write
        convert(model, torch.zeros(1, 3, 32, 32), out_dir=out, formats="onnx,fp32,int8",
                calibration=np.zeros((4, 32, 32, 3), np.uint8), verbose=False, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["previous.txt"]
    assert not list(tmp_path.glob(".out.partial-*"))


def test_api_rejects_options_the_formats_do_not_take(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with pytest.raises(ValueError, match="calibration.*int8"):
        convert(model, torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "o", formats="fp32",
                calibration=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="int8 needs calibration"):
        convert(model, torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "o", formats="int8")
    with pytest.raises(ValueError, match="uint8 of shape"):
        convert(model, torch.zeros(1, 3, 32, 32), out_dir=tmp_path / "o", formats="int8",
                calibration=np.zeros((2, 16, 16, 3), np.uint8))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--formats", "fp32,tensorrt"], "unknown format 'tensorrt'"),
    (["--calib-samples", "0"], "--calib-samples"),
    (["--calib-samples", "5000"], "exceeds the train split"),
])
def test_cli_bad_options(tmp_path, tiny_run, args, fragment):
    out = tmp_path / "art"
    proc = run_cli("export", str(tiny_run / "best.pt"), "--out", str(out), *args)
    assert_user_error(proc, fragment)
    assert _no_artifacts(out)


def test_cli_missing_and_corrupt_checkpoint(tmp_path):
    proc = run_cli("export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "a"))
    assert_user_error(proc, "does not exist")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    proc = run_cli("export", str(bad), "--out", str(tmp_path / "a"))
    assert_user_error(proc, "corrupt")
    assert _no_artifacts(tmp_path / "a")


def test_cli_unwritable_output(tmp_path, tiny_run):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("export", str(tiny_run / "best.pt"), "--out", str(blocker / "art"))
    assert_user_error(proc, "cannot write")
