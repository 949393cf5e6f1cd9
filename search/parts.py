"""A network part (search.space.Part) as a PyTorch module built from the family's own classes, with
latency-realistic random weights, exported to full-int8 TFLite the way `edgevit export` exports a whole
model: the same ONNX exporter, onnx2tf, calibration and int8 converter (export.tflite_convert). Only the
ends differ: the stem takes uint8 pixels (normalization folded in, as a whole model does) and an inner
part takes and gives int8 activations, so a part costs exactly the ops it adds to a network.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevit.fuse import fold_input_normalization, fuse_for_deploy
from edgevit.layers import global_pool
from edgevit.models.efficientformer import Block, EdgeViTConfig, make_downsample, make_stem
from edgevit.synthetic import NATURAL_MEAN, NATURAL_STD, natural_images
from search.space import ACT, ATTENTION, ATTN_RATIO, KEY_DIM, Design, Part

__all__ = ["part_module", "export_int8", "export_part", "export_design", "export_model", "randomize",
           "CALIBRATION_SAMPLES"]

CALIBRATION_SAMPLES = 16


class _Head(nn.Module):
    """The family's head: final BatchNorm (folded into the linear at deploy), global pool, linear."""

    def __init__(self, width: int, classes: int):
        super().__init__()
        self.norm, self.fc = nn.BatchNorm2d(width), nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(global_pool(self.norm(x)))


class _ChannelsLast(nn.Module):
    """Gives the part's NCHW output as NHWC: in the device's layout this is free (onnx2tf cancels it), where an
    NCHW output would cost the part a TRANSPOSE the network does not have."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x).permute(0, 2, 3, 1)


class _Tiny(nn.Module):
    """The overhead probe: the smallest int8 network XNNPACK takes (one 1x1 conv on a 1x1x8 map)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.conv(x)


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm affine parameters and statistics and random attention biases: no branch folds to
    zero and every int8 scale is realistic (a fresh init zero-initialises residual BNs)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        if hasattr(m, "attention_biases"):
            m.attention_biases.copy_(torch.randn(m.attention_biases.shape, generator=g) * 0.5)
    return model.eval()


def part_module(part: Part) -> tuple[nn.Module, tuple[int, ...]]:
    """(deploy-ready module, NCHW input shape) of a part."""
    cfg = EdgeViTConfig(mlp_ratio=max(part.mlp, 1), num_heads=max(part.heads, 1), key_dim=KEY_DIM,
                        attn_ratio=ATTN_RATIO, act=ACT, attention=ATTENTION)
    r = part.resolution
    if part.kind == "stem":
        module, shape = make_stem(part.width, ACT), (1, 3, r, r)
    elif part.kind == "down":
        module, shape = make_downsample(part.in_width, part.width), (1, part.in_width, r, r)
    elif part.kind in ("local", "attn"):
        module = Block(part.width, cfg, r if part.kind == "attn" else None)
        shape = (1, part.width, r, r)
    elif part.kind == "head":
        module, shape = _Head(part.width, part.classes), (1, part.width, r, r)
    elif part.kind == "overhead":
        module, shape = _Tiny(), (1, 8, 1, 1)
    else:
        raise ValueError(f"unknown part kind {part.kind!r}")
    module = randomize(module)
    if part.kind == "head":   # fold the final BN into the linear, as EdgeViT.fuse does
        s = module.norm.weight / torch.sqrt(module.norm.running_var + module.norm.eps)
        t = module.norm.bias - module.norm.running_mean * s
        with torch.no_grad():
            module.fc.bias.add_(module.fc.weight @ t)
            module.fc.weight.mul_(s)
        module.norm = nn.Identity()
    module = fuse_for_deploy(module)
    if part.kind == "stem":
        module = fold_input_normalization(module, NATURAL_MEAN, NATURAL_STD, img_size=part.img)
    if part.kind != "head":
        module = _ChannelsLast(module)
    return module.eval(), shape


def _calibration(shape: tuple[int, ...], pixels: bool) -> np.ndarray:
    """NHWC samples: natural-looking uint8 images for a part that takes pixels, else unit-normal activations."""
    n, c, h, w = CALIBRATION_SAMPLES, shape[1], shape[2], shape[3]
    if pixels:
        return natural_images(n, h)
    return np.random.default_rng(0).standard_normal((n, h, w, c)).astype(np.float32)


def export_int8(module: nn.Module, shape: tuple[int, ...], out: Path, *, io: tuple[str, str]) -> Path:
    """module -> out/model.tflite (full int8, `io` input/output types), built in a fresh folder inside `out` (removed
    after)."""
    out = Path(out).resolve()   # the converter workers run in folders of their own
    target = out / "model.tflite"
    if target.is_file():
        return target
    out.mkdir(parents=True, exist_ok=True)
    # a folder of its own, made here: removing it afterwards can only remove what this call wrote (a worker
    # exporting the same design at the same time, or a user's file in `out`, is never touched)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=out))
    try:
        return _export_int8_in(module, shape, out, work, io)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_int8_in(module: nn.Module, shape: tuple[int, ...], out: Path, work: Path, io: tuple[str, str]) -> Path:
    from export.formats import FORMATS
    from export.onnx_export import export_onnx
    from export.tflite_convert import check_builtin_ops, onnx_to_tflite, saved_model_to_int8
    from search.table import TABLE_FORMAT

    target = out / "model.tflite"
    calib = _calibration(shape, io[0] == "uint8")
    onnx_path = work / "part.onnx"
    export_onnx(module, torch.zeros(shape), onnx_path)
    samples = calib if io[0] == "uint8" else natural_images(4, 64)   # onnx2tf's own check wants 3-channel images
    tf_models = onnx_to_tflite(onnx_path, work / "tf", samples, work / "convert.log")
    partial = work / "model.tflite"
    saved_model_to_int8(tf_models["saved_model"], list(calib), partial, work / "convert.log", io=io)
    check_builtin_ops(partial, fmt=TABLE_FORMAT, integer=FORMATS[TABLE_FORMAT].integer)
    partial.replace(target)
    return target


def export_part(part: Part, out: Path) -> Path:
    module, shape = part_module(part)
    io = ("uint8" if part.kind == "stem" else "int8", "uint8" if part.kind == "head" else "int8")
    return export_int8(module, shape, out, io=io)


def export_model(name: str, img: int, classes: int, out: Path, **options) -> Path:
    """A whole registered model (options: create_model's), randomized and exported like the parts (uint8
    pixels in, uint8 logits out): the baselines' and reference models' counts, and what the table's
    prediction for a design is checked against."""
    import edgevit

    model = randomize(edgevit.create_model(name, num_classes=classes, img_size=img, **options))
    deploy = fold_input_normalization(fuse_for_deploy(model, strict=False), NATURAL_MEAN, NATURAL_STD, img_size=img)
    return export_int8(deploy, (1, 3, img, img), out, io=("uint8", "uint8"))


def export_design(design: Design, img: int, classes: int, out: Path) -> Path:
    return export_model("edgevit_xs", img, classes, out, **design.model_kwargs())
