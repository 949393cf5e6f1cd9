"""`export.convert()`: any PyTorch image classifier -> ONNX -> TFLite, one artifact per registered
format (export.formats), each checked against the PyTorch float reference on the device runtime
through the device's own preprocessing (contract), with a model card per .tflite and a report.

Everything is built in a staging folder beside `out_dir` and renamed into place only when every
step succeeded, so a failed export never leaves anything that looks complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.card import CARD_NAME, SAMPLE_PACK, build_card, write_card
from contract.errors import UserError
from contract.files import sha256_file
from contract.outputs import check_output_folder, discard, folder_lock, make_staging, publish
from contract.runtime import interpreter_class, runtime_version
from contract.versions import package_versions
from edgevit.fuse import fold_input_normalization, fuse_for_deploy
from export.formats import FORMATS, check_options, judge, needs_calibration, parse_formats
from export.litert import graph_facts, load_interpreter, run_images
from export.metrics import accuracy, compare
from export.onnx_export import OPSET, export_onnx, run_onnx
from export.quiet import captured_output
from export.report import write_report
from export.steps import StepRecord, export_step
from export.tflite_convert import check_builtin_ops, onnx_to_tflite, saved_model_to_int8

__all__ = ["convert", "BuildContext", "DEFAULT_FORMATS"]

DEFAULT_FORMATS = ("onnx", "fp32", "fp16", "int8")
TOOLCHAIN = ("torch", "onnx", "onnxscript", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert", "numpy")
RANDOM_EVAL_IMAGES = 32    # evaluation images when the caller gives neither eval nor calibration images
BATCH = 128                # PyTorch reference batch
OUTPUT_KIND = "export"     # what contract.outputs records as the writer of the output folder


class BuildContext:
    """What a format's builder gets: the deploy model, the images, and the shared stages (ONNX graph,
    onnx2tf's SavedModel and float .tflite files, the int8 conversion), each built once on first use."""

    def __init__(self, *, deploy: nn.Module, example: torch.Tensor, opset: int, calibration: np.ndarray | None,
                 images: np.ndarray, labels: np.ndarray | None, reference: np.ndarray, staging: Path, work: Path,
                 threads: int, verbose: bool):
        self.deploy, self.example, self.opset, self.calibration = deploy, example, opset, calibration
        self.images, self.labels, self.reference = images, labels, reference
        self.staging, self.work, self.log = staging, work, work / "convert.log"
        self.threads, self.verbose = threads, verbose
        self.steps: list[StepRecord] = []
        self.onnx_logits: np.ndarray | None = None
        self._cache: dict[str, object] = {}

    def _once(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make(self)
        return self._cache[key]

    def onnx(self) -> Path:
        return self._once("onnx", _step_onnx)

    def tf_models(self) -> dict[str, Path]:
        """{"saved_model", "fp32", "fp16"} written by onnx2tf."""
        self.onnx()
        return self._once("tf", _step_onnx2tf)

    def int8(self) -> Path:
        if self.calibration is None:
            raise UserError("int8 needs calibration images (uint8 HWC RGB, from the train split)")
        self.tf_models()
        return self._once("int8", _step_int8)


@export_step("onnx")
def _step_onnx(ctx: BuildContext) -> Path:
    path = ctx.work / "model.onnx"
    with captured_output(ctx.log):
        export_onnx(ctx.deploy, ctx.example, path, opset=ctx.opset)
    ctx.onnx_logits = run_onnx(path, _nchw(ctx.images))
    return path


@export_step("onnx2tf")
def _step_onnx2tf(ctx: BuildContext) -> dict[str, Path]:
    sample = ctx.calibration if ctx.calibration is not None else ctx.images
    return onnx_to_tflite(ctx.onnx(), ctx.work / "tf", sample, ctx.log)


@export_step("int8")
def _step_int8(ctx: BuildContext) -> Path:
    path = ctx.work / "tf" / "model_int8.tflite"
    saved_model_to_int8(ctx.tf_models()["saved_model"], ctx.calibration, path, ctx.log)
    return path


@export_step("validate {fmt}")
def _step_validate(ctx: BuildContext, *, fmt: str, path: Path) -> dict:
    if not FORMATS[fmt].tflite:   # the ONNX graph, checked on ONNX Runtime
        import onnx

        graph = onnx.load(str(path)).graph
        return {**compare(ctx.reference, ctx.onnx_logits), "num_ops": len(graph.node),
                "transposes": sum(n.op_type == "Transpose" for n in graph.node),
                **({"accuracy": accuracy(ctx.onnx_logits, ctx.labels)} if ctx.labels is not None else {})}
    return validate_tflite(ctx, path, fmt)


def validate_tflite(ctx: BuildContext, path: Path, fmt: str, float_allowed: frozenset[str] = frozenset()) -> dict:
    """A .tflite on the device runtime against the PyTorch reference: builtin ops only (an integer format: no
    float op except `float_allowed`, what the int8 repair keeps float on purpose), logits compared, graph facts."""
    with captured_output(ctx.log):   # the runtime announces its delegate on stderr
        check_builtin_ops(path, fmt=fmt, integer=FORMATS[fmt].integer, float_allowed=float_allowed)
        interp = load_interpreter(path, threads=ctx.threads)
        logits = run_images(interp, ctx.images)
        metrics = {**compare(ctx.reference, logits), **graph_facts(interp)}
    if ctx.labels is not None:
        metrics["accuracy"] = accuracy(logits, ctx.labels)
    return metrics


def _build_one(ctx: BuildContext, name: str, ref_acc: float | None) -> dict:
    fmt = FORMATS[name]
    t0 = time.perf_counter()
    src = Path(fmt.build(ctx))
    seconds = time.perf_counter() - t0
    metrics = judge(name, _step_validate(ctx, fmt=name, path=src), ref_acc)
    dest = ctx.staging / fmt.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return metrics | {"file": fmt.file, "size_mb": round(dest.stat().st_size / 1e6, 4), "sha256": sha256_file(dest),
                      "export_seconds": round(seconds, 2)}


def _nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32)


@torch.no_grad()
def _torch_logits(model: nn.Module, images_nchw: np.ndarray, mean, std) -> np.ndarray:
    x = torch.from_numpy(images_nchw)
    if mean is not None:
        x = (x / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return torch.cat([model(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]).numpy()


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
    force: bool = False,
    protect: tuple[Path, ...] = (),
    repair: bool = True,
) -> dict:
    """Export `model` (eval-mode classifier taking `(x/255 - mean)/std`, or raw pixels if mean is
    None) to `out_dir`. `calibration`: uint8 HWC RGB images (required for int8), ideally from the
    train split. `eval_images`/`eval_labels`: held-out uint8 images for the fidelity check (default:
    the calibration images, unlabeled). Returns the report dict (also written as JSON and Markdown);
    an artifact that misses a target is marked `pass: false` there. `out_dir` must be new, empty or an
    earlier export; force=True lets it hold other files (kept), `protect` names inputs that must not
    be inside it (contract.outputs). When int8 misses a target the report carries the int8 debugger's
    table, and with repair=True (the default) export.repair tries better calibration, then keeping the
    fewest layers in float (a format's debug hook, export.formats); the card records any layer that is not
    int8."""
    t_start = time.perf_counter()
    fmts = parse_formats(formats)
    check_options(fmts, {k: v for k, v in {"calibration": calibration, "calib_samples": calib_samples,
                                           "opset": opset}.items() if v is not None})
    size = _input_size(example_input)
    if calibration is not None and not isinstance(calibration, np.ndarray):
        calibration = np.stack(list(calibration))   # read once: an iterator would be empty the second time
    calib = _calibration(calibration, calib_samples, size, needed=needs_calibration(fmts))
    pool = _calibration(calibration, None, size, needed=False)
    images, eval_labels, eval_split = _eval_set(eval_images, eval_labels, eval_split, calib, size)
    req = _Request(out_dir=Path(out_dir), model=model.eval(), example=example_input, fmts=fmts, size=size,
                   calib=calib, images=images, labels=labels, eval_labels=eval_labels, eval_split=eval_split,
                   mean=mean, std=std, name=name or type(model).__name__, source=dict(source or {}),
                   sample_pack=sample_pack, opset=opset or OPSET, threads=threads or os.cpu_count() or 1,
                   verbose=verbose, force=force, t_start=t_start, repair=repair, calib_pool=pool)
    check_output_folder(req.out_dir, kind=OUTPUT_KIND, force=force, protect=protect, expect=expected_files(fmts))
    with folder_lock(req.out_dir, what="export"):
        return _convert(req)


def expected_files(fmts: tuple[str, ...]) -> tuple[str, ...]:
    """The files an export of these formats writes (a user's file there is refused even with --force)."""
    files = [FORMATS[f].file for f in fmts]
    cards = [str(Path(FORMATS[f].file).with_name(CARD_NAME)) for f in fmts if FORMATS[f].tflite]
    return (*files, *cards, SAMPLE_PACK, "export_report.json", "export_report.md")


@dataclass(frozen=True)
class _Request:
    """convert()'s arguments, checked."""
    out_dir: Path
    model: nn.Module
    example: torch.Tensor
    fmts: tuple[str, ...]
    size: int
    calib: np.ndarray | None
    images: np.ndarray
    labels: list[str] | None
    eval_labels: np.ndarray | None
    eval_split: str
    mean: tuple | None
    std: tuple | None
    name: str
    source: dict
    sample_pack: tuple | None
    opset: int
    threads: int
    verbose: bool
    force: bool
    t_start: float
    repair: bool = True
    calib_pool: np.ndarray | None = None     # every calibration image given (calib_samples may use fewer)


def _convert(req: _Request) -> dict:
    staging, work = make_staging(req.out_dir), Path(tempfile.mkdtemp(prefix="edgevit-export-"))
    try:
        reference = _torch_logits(req.model, _nchw(req.images), req.mean, req.std)
        deploy = fuse_for_deploy(req.model, strict=False)
        if req.mean is not None:
            deploy = fold_input_normalization(deploy, req.mean, req.std, img_size=req.size)
        ctx = BuildContext(deploy=deploy, example=req.example, opset=req.opset, calibration=req.calib,
                           images=req.images, labels=req.eval_labels, reference=reference, staging=staging, work=work,
                           threads=req.threads, verbose=req.verbose)
        ctx.calibration_pool = req.calib_pool
        ref_acc = accuracy(reference, req.eval_labels) if req.eval_labels is not None else None
        artifacts = {f: _build_one(ctx, f, ref_acc) for f in req.fmts}
        for name, facts in artifacts.items():
            if not facts["pass"] and FORMATS[name].debug is not None:
                artifacts[name] = _debug(ctx, name, facts, ref_acc, repair=req.repair)
        labels = list(req.labels) if req.labels is not None else [str(i) for i in range(reference.shape[1])]
        toolchain = package_versions(TOOLCHAIN)
        _write_cards(ctx, artifacts, name=req.name, labels=labels, mean=req.mean, std=req.std, source=req.source,
                     toolchain=toolchain)
        if req.sample_pack is not None:
            np.savez_compressed(staging / SAMPLE_PACK, images=req.sample_pack[0].astype(np.uint8),
                                labels=np.asarray(req.sample_pack[1], dtype=np.int64), class_names=np.array(labels))
        report = {
            "name": req.name, "input_size": req.size, "source": req.source, "runtime": runtime_version(),
            "threads": ctx.threads, "toolchain": toolchain,
            "reference": {"split": req.eval_split, "num_images": int(len(req.images)), "accuracy": ref_acc},
            "artifacts": artifacts, "steps": [s.as_dict() for s in ctx.steps],
            "total_seconds": round(time.perf_counter() - req.t_start, 2),
        }
        write_report(staging, report)
        publish(staging, req.out_dir, kind=OUTPUT_KIND, force=req.force)
        return report
    except BaseException:
        discard(staging)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _debug(ctx: BuildContext, name: str, facts: dict, ref_acc: float | None, *, repair: bool) -> dict:
    """A failed artifact's facts with what its format's debug hook added (for int8: the debugger's table and
    the repair, export.repair), and the size and hash of the file in staging, which a repair may replace."""
    path = ctx.staging / FORMATS[name].file
    kept = {k: facts[k] for k in ("file", "export_seconds")}
    out = FORMATS[name].debug(ctx, facts, ref_acc, repair=repair)
    return out | kept | {"size_mb": round(path.stat().st_size / 1e6, 4), "sha256": sha256_file(path)}


def _write_cards(ctx: BuildContext, artifacts: dict, *, name: str, labels, mean, std, source, toolchain) -> None:
    for fmt, facts in artifacts.items():
        if not FORMATS[fmt].tflite:
            continue
        path = ctx.staging / FORMATS[fmt].file
        interp = interpreter_class()(model_path=str(path))
        card = build_card(name=name, fmt=fmt, arithmetic=FORMATS[fmt].arithmetic, tflite=path,
                          input_detail=interp.get_input_details()[0],
                          output_detail=interp.get_output_details()[0], labels=labels, mean=mean, std=std,
                          source=source, fidelity=facts, toolchain=toolchain)
        if "float_layers" in facts.get("repair", {}):   # never silently: what the repair kept out of int8
            card["float_layers"] = facts["repair"]["float_layers"]
        write_card(path.with_name(CARD_NAME), card)


def _input_size(example_input: torch.Tensor) -> int:
    if example_input.ndim != 4 or example_input.shape[0] != 1 or example_input.shape[1] != 3 \
            or example_input.shape[2] != example_input.shape[3]:
        raise UserError(f"example_input must have shape (1, 3, S, S), got {tuple(example_input.shape)}")
    return int(example_input.shape[-1])


def _eval_set(eval_images, eval_labels, eval_split: str, calib, size: int):
    if eval_images is not None:
        return eval_images, eval_labels, eval_split
    if calib is not None:
        return calib, None, "calibration"
    return np.random.default_rng(0).integers(0, 256, (RANDOM_EVAL_IMAGES, size, size, 3), dtype=np.uint8), None, \
        "random"


def _calibration(calibration, calib_samples, size: int, *, needed: bool) -> np.ndarray | None:
    if calibration is None:
        if needed:
            raise UserError("int8 needs calibration images (uint8 HWC RGB, from the train split)")
        return None
    images = np.stack(list(calibration)) if not isinstance(calibration, np.ndarray) else calibration
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise UserError(f"calibration images must be uint8 of shape (N, {size}, {size}, 3), "
                        f"got {images.dtype} {images.shape}")
    if calib_samples is not None:
        if calib_samples < 1 or calib_samples > len(images):
            raise UserError(f"calib samples must be between 1 and {len(images)} (the images given), "
                            f"got {calib_samples}")
        images = images[:calib_samples]
    if len(images) == 0:
        raise UserError("calibration is empty; give at least one image")
    return images
