"""The int8 debugger and the automatic repair (export.quant_debug, export.repair): on a model with one
deliberately badly-quantizable layer the debugger ranks that layer first and the repair brings int8
agreement to >= 99% by keeping it out of int8; on a real export the table names real PyTorch modules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli
from torch import nn

import export


class Wide(nn.Module):
    """Channel 0 times 1000: one activation whose int8 scale, fitted to that channel, crushes all others."""

    def forward(self, x):
        scale = torch.ones(1, x.shape[1], 1, 1)
        scale[:, 0] = 1000.0
        return x * scale


class WideNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.body = nn.Conv2d(32, 32, 3, 1, 1)
        self.wide = Wide()
        self.mix = nn.Conv2d(32, 64, 1)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.mix(self.wide(self.body(self.stem(x)))))
        return self.head(x.mean((2, 3)))


def _trained_wide_net(data) -> nn.Module:
    """600 steps on digits, so its predictions depend on the image (and are not near ties, which any int8
    noise would flip); the wide channel's read-out is scaled down by the same 1000 and kept there."""
    torch.manual_seed(0)
    net = WideNet()
    mean, std = torch.tensor(data.mean).reshape(1, 3, 1, 1), torch.tensor(data.std).reshape(1, 3, 1, 1)
    x = (torch.from_numpy(data.train_x).permute(0, 3, 1, 2).float() / 255 - mean) / std
    y = torch.from_numpy(data.train_y)
    with torch.no_grad():
        net.mix.weight[:, 0] *= 1e-3
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(600):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        net.mix.weight.grad[:, 0] = 0.0     # keep the wide channel's read-out tiny
        opt.step()
    return net.eval()


@pytest.mark.slow   # ~5 min: the repair converts the model once per layer it tries
def test_debugger_ranks_the_wide_layer_first_and_repair_keeps_it_in_float(digits64, tmp_path):
    data = digits64
    net = _trained_wide_net(data)
    kwargs = dict(formats="onnx,int8", mean=data.mean, std=data.std, labels=list(data.class_names),
                  calibration=data.train_x[:100], eval_images=data.test_x, eval_labels=data.test_y,
                  sample_pack=(data.test_x[:32], data.test_y[:32]), verbose=False)
    report = export.convert(net, torch.zeros(1, 3, 64, 64), out_dir=tmp_path / "exp", **kwargs)
    int8 = report["artifacts"]["int8"]
    assert report["reference"]["accuracy"] > 0.3            # 3x chance: its output depends on the image
    assert int8["repair"]["original"]["agreement"] < 0.9                  # int8 was broken by the wide layer ...
    assert int8["debug"]["layers"][0]["module"] == "wide"                # ... and the debugger says where
    assert int8["agreement"] >= 0.99 and int8["pass"]                    # the repair fixed it ...
    assert [f["module"] for f in int8["repair"]["float_layers"]] == ["wide"]   # ... with that layer alone
    card = json.loads((tmp_path / "exp" / "int8" / "model.json").read_text())
    assert [f["module"] for f in card["float_layers"]] == ["wide"]       # never silently
    assert set(int8["repair"]["latency_host_ms"]) >= {"before", "after"}


@pytest.mark.slow
def test_without_repair_the_table_is_reported_and_the_model_kept(digits64, tmp_path):
    data = digits64
    plain = export.convert(_trained_wide_net(data), torch.zeros(1, 3, 64, 64), out_dir=tmp_path / "plain",
                           formats="onnx,int8", mean=data.mean, std=data.std, calibration=data.train_x[:100],
                           eval_images=data.test_x, eval_labels=data.test_y, repair=False, verbose=False)
    assert not plain["artifacts"]["int8"]["pass"] and "repair" not in plain["artifacts"]["int8"]
    assert plain["artifacts"]["int8"]["debug"]["layers"][0]["module"] == "wide"


def test_quant_report_names_the_modules_of_the_exported_model(tiny_run, tiny_export, tmp_path):
    from edgevit.checkpoint import load_checkpoint

    out = tmp_path / "qr"
    proc = run_cli("quant-report", str(tiny_export), "--images", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "quant_report.json").read_text())
    modules = {name for name, _ in load_checkpoint(tiny_run / "best.pt").build_model().named_modules()}
    named = [r["module"] for r in report["layers"] if r["module"] not in ("?", "")]
    # names of the deployed (folded) model: a folded conv+BN block's conv is <block>.0, its activation <block>.1
    unknown = {n for n in named if n not in modules and n.rsplit(".", 1)[0] not in modules}
    assert named and not unknown, unknown
    assert report["matched"] >= 0.5 * report["int8_tensors"]
    shares = [r["share"] for r in report["layers"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1.0)
    first = next(r for r in report["layers"] if r["module"] not in ("?", ""))
    assert first["module"] in proc.stdout and (out / "quant_report.png").is_file()
    assert np.isfinite([r["sqnr_db"] for r in report["layers"] if r["sqnr_db"] is not None]).all()


def test_quant_report_needs_an_export_folder(tmp_path):
    assert_user_error(run_cli("quant-report", str(tmp_path / "nope")), "is not a folder")
    (tmp_path / "exp").mkdir()
    assert_user_error(run_cli("quant-report", str(tmp_path / "exp")), "model.onnx not found")


@pytest.fixture(scope="module")
def xs_and_mobilenetv2_exports(tmp_path_factory):
    """edgevit_xs and MobileNetV2 trained briefly on digits (the same recipe), each exported to int8."""
    root = tmp_path_factory.mktemp("residual")
    proc = run_cli("train", "--model", "edgevit_xs", "--baseline", "mobilenetv2_100", "--epochs", "2",
                   "--out", str(root / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    exports = {}
    runs = {"edgevit_xs": root / "run", "mobilenetv2_100": root / "run" / "baseline"}
    for name, run in runs.items():
        ckpt = run / "best.pt"
        proc = run_cli("export", str(ckpt), "--formats", "onnx,int8", "--calib-samples", "100",
                       "--out", str(root / name))
        assert proc.returncode in (0, 3), proc.stderr + proc.stdout
        exports[name] = root / name
    return exports


@pytest.mark.slow   # trains and exports two models (~5 min); the tiny export's case below runs by default
@pytest.mark.parametrize("name", ["edgevit_xs", "mobilenetv2_100"])
def test_every_residual_branch_keeps_its_own_int8_scale(xs_and_mobilenetv2_exports, name):
    """TFLite's calibrator records a residual branch's range after the in-place ADD has overwritten it with
    the sum (export.calibrate): the branch then got the stream's scale and a handful of int8 levels (local
    SQNR 1-3 dB on edgevit_xs's depthwise mixers). Every tensor that feeds a residual ADD keeps >= 20 dB."""
    _check_residual_feeds(xs_and_mobilenetv2_exports[name])


def test_the_tiny_exports_residual_branches_keep_their_own_int8_scale(tiny_export):
    _check_residual_feeds(tiny_export)


def _check_residual_feeds(art):
    from export.quant_debug import quant_report, residual_feeds

    feeds = residual_feeds(art / "int8" / "model.tflite")
    report = quant_report(art, num_images=16)
    rows = {r["tensor"]: r for r in report["layers"]}
    checked = {t: rows[t]["local_sqnr_db"] for t in feeds if t in rows and rows[t]["local_sqnr_db"] is not None}
    assert len(checked) >= 0.8 * len(feeds) and len(feeds) >= 8, (len(checked), len(feeds))
    worst = min(checked, key=checked.get)
    assert report["residual"]["worst_local_sqnr_db"] == pytest.approx(checked[worst])   # what quant-report prints
    assert checked[worst] >= 20.0, f"{rows[worst]['module']} ({worst}): local SQNR {checked[worst]:.1f} dB"


def test_attention_q_k_and_v_each_keep_their_own_int8_scale(tiny_export):
    """One conv's output carries one int8 scale, and q, k and v sliced out of a fused qkv conv shared the widest
    one's range: on the glyph-trained edgevit_wear those slices measured 21-24 dB local SQNR and a quarter of the
    int8 error. Attention.fuse() splits the conv in three, so the int8 graph slices nothing and every attention
    block's q, k and v come out of convs of their own, at their own scales."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tiny_export / "int8" / "model.tflite"))
    ops, tensors = interp._get_ops_details(), {t["index"]: t for t in interp.get_tensor_details()}
    assert not [o["op_name"] for o in ops if o["op_name"] in ("STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V")]
    made_by = {out: o for o in ops for out in o["outputs"]}

    def conv_behind(t: int) -> int | None:
        """The conv output a matmul operand comes from, through reshapes, transposes, tanh, masks, concats."""
        while (op := made_by.get(t)) is not None and op["op_name"] != "CONV_2D":
            if op["op_name"] not in ("RESHAPE", "TRANSPOSE", "TANH", "MUL", "CONCATENATION", "QUANTIZE"):
                return None
            t = next(i for i in op["inputs"] if i in made_by)   # the computed input, not a constant mask
        return t if op is not None else None

    matmuls = [o for o in ops if o["op_name"] == "BATCH_MATMUL"]
    assert len(matmuls) == 4, "edgevit_xxs: two attention blocks, two matmuls each"
    for scores, mixed in zip(matmuls[::2], matmuls[1::2]):
        q, k, v = (conv_behind(t) for t in (scores["inputs"][0], scores["inputs"][1], mixed["inputs"][1]))
        assert None not in (q, k, v), "q, k or v does not come straight from a conv (sliced out of a shared one?)"
        assert len({q, k, v}) == 3 and len({tensors[t]["quantization"][0] for t in (q, k, v)}) == 3
