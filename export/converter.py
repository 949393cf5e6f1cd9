"""`export.convert()`: any PyTorch image classifier -> ONNX -> TFLite fp32/fp16/int8, each artifact
checked against the PyTorch float reference on the device runtime, with sidecars and a report.

Everything is built in a staging folder beside `out_dir` and renamed into place only when every
step succeeded, so a failed export never leaves anything that looks complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevit.fuse import fold_input_normalization, fuse_for_deploy
from export.compare import accuracy, compare
from export.formats import FORMATS, check_options, parse_formats
from export.litert import runtime_version
from export.onnx_export import OPSET, export_onnx, run_onnx
from export.quiet import captured_output
from export.report import write_report
from export.sidecar import build_sidecar, sha256_file, toolchain_versions, write_json
from export.steps import StepRecord, export_step
from export.tflite_convert import check_builtin_ops, onnx_to_tflite, saved_model_to_int8
from export.validate import judge, tflite_fidelity

__all__ = ["convert", "DEFAULT_FORMATS"]

DEFAULT_FORMATS = ("onnx", "fp32", "fp16", "int8")


@dataclass
class _Ctx:
    staging: Path
    work: Path
    log: Path
    verbose: bool
    threads: int
    images: np.ndarray                  # uint8 NHWC evaluation images
    labels: np.ndarray | None
    reference: np.ndarray               # PyTorch fp32 logits of the original model on `images`
    steps: list[StepRecord] = field(default_factory=list)
    onnx_logits: np.ndarray | None = None   # set by the onnx step
    tf: dict[str, Path] = field(default_factory=dict)      # set by the onnx2tf step
    fidelity: dict = field(default_factory=dict)           # set by each validate step


def _nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32)


@torch.no_grad()
def _torch_logits(model: nn.Module, images_nchw: np.ndarray, mean, std) -> np.ndarray:
    x = torch.from_numpy(images_nchw)
    if mean is not None:
        x = (x / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return torch.cat([model(x[i:i + 128]) for i in range(0, len(x), 128)]).numpy()


@export_step("onnx")
def _step_onnx(ctx: _Ctx, deploy: nn.Module, example: torch.Tensor, opset: int) -> Path:
    path = ctx.work / "model.onnx"
    with captured_output(ctx.log):
        export_onnx(deploy, example, path, opset=opset)
    logits = run_onnx(path, _nchw(ctx.images))
    diff = float(np.abs(logits - ctx.reference).max())
    if diff > 1e-4:
        raise ValueError(f"ONNX Runtime logits differ from PyTorch by {diff:.2e} (> 1e-4): the exported graph is wrong")
    ctx.onnx_logits = logits
    return path


@export_step("onnx2tf")
def _step_onnx2tf(ctx: _Ctx, onnx_path: Path, calibration: np.ndarray) -> Path:
    ctx.tf = onnx_to_tflite(onnx_path, ctx.work / "tf", calibration, ctx.log)
    return ctx.tf["saved_model"]


@export_step("int8")
def _step_int8(ctx: _Ctx, calibration: np.ndarray) -> Path:
    path = ctx.work / "tf" / "model_int8.tflite"
    saved_model_to_int8(ctx.tf["saved_model"], calibration, path, ctx.log)
    return path


@export_step("validate {fmt}")
def _step_validate(ctx: _Ctx, *, fmt: str, path: Path) -> Path:
    with captured_output(ctx.log):   # the runtime announces its delegate on stderr
        check_builtin_ops(path, fmt=fmt)
        ctx.fidelity = tflite_fidelity(path, ctx.images, ctx.labels, ctx.reference, threads=ctx.threads)
    return path


def convert(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    out_dir: str | Path,
    formats: str | Iterable[str] = DEFAULT_FORMATS,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    labels: list[str] | None = None,
    calibration: np.ndarray | Iterable[np.ndarray] | None = None,
    calib_samples: int | None = None,
    eval_images: np.ndarray | None = None,
    eval_labels: np.ndarray | None = None,
    eval_split: str = "test",
    sample_pack: tuple[np.ndarray, np.ndarray] | None = None,
    name: str | None = None,
    source: dict | None = None,
    opset: int | None = None,
    threads: int | None = None,
    verbose: bool = True,
) -> dict:
    """Export `model` (eval-mode classifier taking `(x/255 - mean)/std`, or raw pixels if mean is
    None) to `out_dir`. `calibration`: uint8 HWC RGB images (required for int8), ideally from the
    train split. `eval_images`/`eval_labels`: held-out uint8 images for the fidelity check (default:
    the calibration images, unlabeled). Returns the report dict (also written as JSON and Markdown)."""
    t_start = time.perf_counter()
    fmts = parse_formats(formats if not isinstance(formats, str) else formats)
    check_options(fmts, {k: v for k, v in {"calibration": calibration, "calib_samples": calib_samples,
                                           "opset": opset}.items() if v is not None})
    if example_input.ndim != 4 or example_input.shape[0] != 1 or example_input.shape[1] != 3:
        raise ValueError(f"example_input must have shape (1, 3, H, W), got {tuple(example_input.shape)}")
    size = int(example_input.shape[-1])
    calib = _calibration(calibration, calib_samples, size, needed="int8" in fmts)
    if eval_images is None:
        eval_images = calib if calib is not None else np.random.default_rng(0).integers(
            0, 256, (32, size, size, 3), dtype=np.uint8)
        eval_labels, eval_split = None, "calibration" if calib is not None else "random"
    out_dir = Path(out_dir)
    staging = _make_staging(out_dir)
    work = Path(tempfile.mkdtemp(prefix="edgevit-export-"))
    model = model.eval()
    try:
        reference = _torch_logits(model, _nchw(eval_images), mean, std)
        ctx = _Ctx(staging=staging, work=work, log=work / "convert.log", verbose=verbose,
                   threads=threads or os.cpu_count() or 1, images=eval_images, labels=eval_labels, reference=reference)
        labels = list(labels) if labels is not None else [str(i) for i in range(reference.shape[1])]
        deploy = fuse_for_deploy(model, strict=False)
        if mean is not None:
            deploy = fold_input_normalization(deploy, mean, std, img_size=size)
        ref_acc = accuracy(reference, eval_labels) if eval_labels is not None else None
        artifacts = _build(ctx, fmts, deploy, example_input, calib, opset or OPSET, ref_acc)
        toolchain = toolchain_versions()
        source = dict(source or {})
        for fmt in fmts:
            if FORMATS[fmt].tflite:
                path = staging / FORMATS[fmt].file
                write_json(path.parent / "model.json", build_sidecar(
                    name=name or type(model).__name__, fmt=fmt, tflite=path, labels=labels, mean=mean, std=std,
                    source=source, fidelity=artifacts[fmt], toolchain=toolchain))
        if sample_pack is not None:
            np.savez_compressed(staging / "samples.npz", images=sample_pack[0].astype(np.uint8),
                                labels=np.asarray(sample_pack[1], dtype=np.int64), class_names=np.array(labels))
        report = {
            "name": name or type(model).__name__, "input_size": size, "source": source,
            "runtime": runtime_version(), "threads": ctx.threads, "toolchain": toolchain,
            "reference": {"split": eval_split, "num_images": int(len(eval_images)), "accuracy": ref_acc},
            "artifacts": artifacts, "steps": [s.as_dict() for s in ctx.steps],
            "total_seconds": round(time.perf_counter() - t_start, 2),
        }
        write_report(staging, report)
        _publish(staging, out_dir)
        return report
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build(ctx: _Ctx, fmts, deploy, example, calib, opset, ref_acc) -> dict:
    artifacts: dict[str, dict] = {}
    onnx_path = _step_onnx(ctx, deploy, example, opset)
    onnx_seconds = ctx.steps[-1].seconds
    if "onnx" in fmts:
        import onnx

        graph = onnx.load(str(onnx_path)).graph
        shutil.copy2(onnx_path, ctx.staging / FORMATS["onnx"].file)
        artifacts["onnx"] = judge("onnx", {
            **compare(ctx.reference, ctx.onnx_logits), "num_ops": len(graph.node),
            "transposes": sum(n.op_type == "Transpose" for n in graph.node),
            **({"accuracy": accuracy(ctx.onnx_logits, ctx.labels)} if ctx.labels is not None else {}),
        }, ref_acc)
        artifacts["onnx"].update(_file_facts(ctx.staging / FORMATS["onnx"].file), export_seconds=onnx_seconds)
    tflite_fmts = [f for f in fmts if FORMATS[f].tflite]
    if not tflite_fmts:
        return artifacts
    sample = calib if calib is not None else ctx.images
    _step_onnx2tf(ctx, onnx_path, sample)
    made = {"fp32": (ctx.tf["fp32"], ctx.steps[-1].seconds), "fp16": (ctx.tf["fp16"], ctx.steps[-1].seconds)}
    if "int8" in fmts:
        made["int8"] = (_step_int8(ctx, calib), ctx.steps[-1].seconds)
    for fmt in tflite_fmts:
        src, seconds = made[fmt]
        _step_validate(ctx, fmt=fmt, path=src)
        dest = ctx.staging / FORMATS[fmt].file
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        artifacts[fmt] = judge(fmt, dict(ctx.fidelity), ref_acc)
        artifacts[fmt].update(_file_facts(dest), export_seconds=seconds)
    return artifacts


def _file_facts(path: Path) -> dict:
    return {"file": str(Path(*path.parts[-2:])) if path.parent.name in FORMATS else path.name,
            "size_mb": round(path.stat().st_size / 1e6, 4), "sha256": sha256_file(path)}


def _calibration(calibration, calib_samples, size: int, *, needed: bool) -> np.ndarray | None:
    if calibration is None:
        if needed:
            raise ValueError("int8 needs calibration images (uint8 HWC RGB, from the train split)")
        return None
    images = np.stack(list(calibration)) if not isinstance(calibration, np.ndarray) else calibration
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise ValueError(f"calibration images must be uint8 of shape (N, {size}, {size}, 3), "
                         f"got {images.dtype} {images.shape}")
    if calib_samples is not None:
        if calib_samples < 1 or calib_samples > len(images):
            raise ValueError(f"calib samples must be between 1 and {len(images)} (the images given), "
                             f"got {calib_samples}")
        images = images[:calib_samples]
    if len(images) == 0:
        raise ValueError("calibration is empty; give at least one image")
    return images


def _make_staging(out_dir: Path) -> Path:
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    except OSError as e:
        raise ValueError(f"cannot write to output folder {out_dir} ({e.strerror}); choose another --out") from None


def _publish(staging: Path, out_dir: Path) -> None:
    """Rename the finished staging folder into place; an older export there is replaced whole."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
