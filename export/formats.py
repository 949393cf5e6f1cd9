"""Export formats, one registered `Format` each: its file, its builder, the options it takes, its
fidelity targets, and its behaviour: the arithmetic its kernels compute in on the device (recorded in
the model card; the latency projection picks its CPI by it), whether it needs calibration images, and
the hook that debugs (and repairs) an artifact that missed a target. A new format is one object passed
to `register_format` (here or anywhere imported before `export.convert` runs):

    register_format(Format(name="int8_fast", file="int8_fast/model.tflite", description="...",
                           build=lambda ctx: my_builder(ctx), targets=(Target("agreement", ">=", 0.98),),
                           arithmetic="int8", calibration=True))

`build(ctx)` gets the converter's BuildContext (lazily cached shared stages: ctx.onnx(),
ctx.tf_models(), ctx.int8(), plus ctx.work, ctx.calibration, ctx.log) and returns the path of the
finished artifact; the converter validates it (kind "tflite": builtin ops, logits on the device
runtime vs the PyTorch reference; kind "onnx": ONNX Runtime vs PyTorch), judges it against the
format's targets and copies it into the output folder. A format without targets, or a target whose
metric was not measured, is an error, never a silent pass. Nothing outside this file decides by a
format's name: code asks the format (`FORMATS[name].arithmetic`, `needs_calibration(names)`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from contract.card import ARITHMETICS, INTEGER_ARITHMETICS
from contract.errors import UserError

__all__ = ["Target", "Format", "FORMATS", "register_format", "parse_formats", "check_options", "judge",
           "needs_calibration"]

KINDS = ("onnx", "tflite")
CALIBRATION_OPTIONS = frozenset({"calibration", "calib_samples"})   # what a format that calibrates accepts


@dataclass(frozen=True)
class Target:
    metric: str                  # a key of the artifact's metrics, e.g. "agreement"
    op: str                      # "<=" or ">="
    bound: float
    needs_labels: bool = False   # measurable only when evaluation labels are given

    def __post_init__(self):
        if self.op not in ("<=", ">="):
            raise ValueError(f"target {self.metric}: op must be '<=' or '>=', got {self.op!r}")

    def met(self, value: float) -> bool:
        return bool(value <= self.bound if self.op == "<=" else value >= self.bound)


@dataclass(frozen=True)
class Format:
    name: str
    file: str                              # path inside the output folder
    description: str
    build: Callable[..., object]           # build(ctx) -> Path of the finished artifact
    targets: tuple[Target, ...]
    options: frozenset[str] = frozenset()  # keyword options of export.convert() this format uses
    kind: str = "tflite"                   # "tflite": runtime-validated, gets a model card; "onnx"
    arithmetic: str = "fp32"               # what its kernels compute in on the device's CPU (contract.card.ARITHMETICS)
    calibration: bool = False              # builds from calibration images (export.convert's `calibration`)
    debug: Callable[..., dict] | None = None   # debug(ctx, metrics, ref_acc, *, repair) -> metrics, when it missed
    #                                            a target: the debugger's table and any repair, recorded in the report

    @property
    def tflite(self) -> bool:
        return self.kind == "tflite"

    @property
    def accepts(self) -> frozenset[str]:
        """The keyword options of export.convert() this format uses: its own, and calibration's if it calibrates."""
        return self.options | (CALIBRATION_OPTIONS if self.calibration else frozenset())

    @property
    def integer(self) -> bool:
        """Every op but (de)quantize computes in integers: an op left in float is refused (check_builtin_ops)."""
        return self.arithmetic in INTEGER_ARITHMETICS


FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    if fmt.name in FORMATS:
        raise ValueError(f"export format {fmt.name!r} registered twice")
    if not fmt.targets:
        raise ValueError(f"export format {fmt.name!r} has no fidelity targets; every format must say what "
                         "'faithful' means for it")
    if fmt.kind not in KINDS:
        raise ValueError(f"export format {fmt.name!r}: kind must be one of {', '.join(KINDS)}, got {fmt.kind!r}")
    if fmt.arithmetic not in ARITHMETICS:
        raise ValueError(f"export format {fmt.name!r}: arithmetic must be one of {', '.join(ARITHMETICS)}, "
                         f"got {fmt.arithmetic!r}")
    FORMATS[fmt.name] = fmt
    return fmt


def _debug_int8(ctx, metrics: dict, ref_acc: float | None, *, repair: bool) -> dict:
    """The int8 debugger's table, then the repair (better calibration, the fewest tensors in float)."""
    from export.repair import debug_and_repair

    log = print if ctx.verbose else (lambda *a, **k: None)
    return debug_and_repair(ctx, "int8", metrics, ref_acc, repair=repair, log=log)


register_format(Format(
    "onnx", "model.onnx", "ONNX, float32 NCHW, opset 20, verified with ONNX Runtime",
    build=lambda ctx: ctx.onnx(), targets=(Target("max_abs", "<=", 1e-4),), options=frozenset({"opset"}),
    kind="onnx"))
register_format(Format(
    "fp32", "fp32/model.tflite", "TFLite float32, NHWC float input 0..255",
    build=lambda ctx: ctx.tf_models()["fp32"], targets=(Target("max_abs", "<=", 1e-4),)))
register_format(Format(   # the runtime dequantizes float16 weights at load on a CPU: its kernels are fp32 ones
    "fp16", "fp16/model.tflite", "TFLite float16 weights (float32 compute on CPU), NHWC float input",
    build=lambda ctx: ctx.tf_models()["fp16"], targets=(Target("agreement", ">=", 0.995),), arithmetic="fp32"))
register_format(Format(
    "int8", "int8/model.tflite", "TFLite full int8 (per-channel weights), uint8 NHWC image input",
    build=lambda ctx: ctx.int8(),
    targets=(Target("agreement", ">=", 0.99), Target("accuracy_drop_pp", "<=", 0.5, needs_labels=True)),
    arithmetic="int8", calibration=True, debug=_debug_int8))


def parse_formats(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise UserError(f"no formats given; choose from {', '.join(FORMATS)}")
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise UserError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return tuple(n for n in FORMATS if n in names)   # registry order: shared stages are built once, in order


def needs_calibration(formats: tuple[str, ...]) -> bool:
    """Whether any of these formats builds from calibration images."""
    return any(FORMATS[f].calibration for f in formats)


def check_options(formats: tuple[str, ...], given: dict[str, object]) -> None:
    """`given` holds the format-specific options the caller set (not None)."""
    accepted = set().union(*(FORMATS[f].accepts for f in formats))
    for option in given:
        if option not in accepted:
            users = [f.name for f in FORMATS.values() if option in f.accepts]
            raise UserError(f"option {option!r} applies to format(s) {', '.join(users)}, "
                            f"which are not being exported ({', '.join(formats)})")


def judge(fmt: str, metrics: dict, reference_accuracy: float | None) -> dict:
    """Adds accuracy_drop_pp (when labels exist), one check per target and the overall pass. A target
    that needs labels is marked not evaluated when there are none; any other unmeasured metric is an
    error (the format's evaluation is broken), not a pass."""
    labelled = reference_accuracy is not None and metrics.get("accuracy") is not None
    if labelled:
        metrics["accuracy_drop_pp"] = round(100.0 * (reference_accuracy - metrics["accuracy"]), 4)
    # NaN or infinity (a broken model) fails its target and is recorded as null: reports stay JSON
    broken = {k: str(v) for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    checks = {}
    for t in FORMATS[fmt].targets:
        target = f"{t.op} {t.bound}"
        if t.metric in broken:
            checks[t.metric] = {"target": target, "value": None, "pass": False,
                                "note": f"not finite ({broken[t.metric]})"}
        elif t.metric in metrics and metrics[t.metric] is not None:
            checks[t.metric] = {"target": target, "value": metrics[t.metric], "pass": t.met(metrics[t.metric])}
        elif t.needs_labels and not labelled:
            checks[t.metric] = {"target": target, "value": None, "pass": None, "note": "not evaluated: no labels"}
        else:
            raise ValueError(f"export format {fmt!r}: target metric {t.metric!r} was not measured")
    metrics.update({k: None for k in broken}, checks=checks)
    if broken:
        metrics["non_finite"] = sorted(broken)
    metrics["pass"] = all(c["pass"] is not False for c in checks.values())
    return metrics
