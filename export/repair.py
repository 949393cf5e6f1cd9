"""When int8 misses its fidelity targets: say where (the int8 debugger's table, export.quant_debug), then
try to fix it, in order, never silently:

1. better calibration: every calibration image the caller gave (when `calib_samples` used fewer), up to
   MAX_CALIBRATION. TFLite's converter takes min/max ranges only: percentile or MSE ranges are not
   available on this route, so they are not tried.
2. keep the fewest tensors in float: the debugger's worst tensors, one more per attempt (up to
   MAX_FLOAT_TENSORS); a tensor stays float when the op that writes it and the ops that read it do
   (the converter's selective quantization, export.tf_worker), everything else stays int8.
The first attempt that meets every target replaces the int8 artifact; its card and the report record
what was done, which tensors (and PyTorch modules) are not int8, and the host latency it cost. When
no attempt meets the targets within the limits, the original artifact stays, marked FAIL, with every
attempt recorded. Attempts are judged on the export's evaluation images, like every artifact.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from export.converter import validate_tflite
from export.formats import FORMATS, judge
from export.litert import load_interpreter
from export.tflite_convert import saved_model_to_int8

__all__ = ["debug_and_repair", "MAX_FLOAT_TENSORS", "MAX_CALIBRATION", "DEBUG_IMAGES"]

MAX_FLOAT_TENSORS = 4
MAX_CALIBRATION = 1000
DEBUG_IMAGES = 32
TABLE_ROWS = 10


def debug_and_repair(ctx, fmt: str, metrics: dict, ref_acc: float | None, *, repair: bool, log=print) -> dict:
    """`metrics`: the judged metrics of the int8 artifact of format `fmt` (it failed). Returns them with "debug"
    (the ranked table) and, when `repair`, "repair" (the attempts); when an attempt passed, the metrics are
    the repaired model's and the staging int8 file is replaced."""
    from export.quant_debug import quant_report

    int8 = ctx.staging / FORMATS[fmt].file
    report = quant_report(onnx_path=ctx.onnx(), int8_path=int8, images=ctx.images[:DEBUG_IMAGES])
    metrics = metrics | {"debug": {k: report[k] for k in ("images", "agreement", "matched", "int8_tensors", "how")}
                         | {"layers": report["layers"][:TABLE_ROWS]}}
    log(f"int8 missed its targets; worst layer: {_name(report['layers'][0])} "
        f"({100 * report['layers'][0]['share']:.0f}% of the int8 error)")
    if not repair:
        return metrics
    attempts, found = [], None
    for plan in _plans(ctx, report, int8):
        path = ctx.work / f"int8-repair-{len(attempts)}.tflite"
        saved_model_to_int8(ctx.tf_models()["saved_model"], plan["calibration"], path, ctx.log,
                            float_nodes=plan["float_nodes"])
        judged = judge(fmt, validate_tflite(ctx, path, fmt, frozenset(plan["float_nodes"])), ref_acc)
        attempts.append({k: v for k, v in plan.items() if k not in ("calibration", "float_nodes")}
                        | {"float_ops": len(plan["float_nodes"]), "agreement": judged["agreement"],
                           "accuracy_drop_pp": judged.get("accuracy_drop_pp"), "pass": judged["pass"]})
        log(f"  repair attempt {len(attempts)}: {attempts[-1]['what']}: agreement {judged['agreement']:.4f} "
            f"{'PASS' if judged['pass'] else 'still FAIL'}")
        if judged["pass"]:
            found = (path, judged, plan)
            break
    if found is None:
        return metrics | {"repair": {"result": f"targets not met after {len(attempts)} attempts (limits: "
                                               f"{MAX_CALIBRATION} calibration images, {MAX_FLOAT_TENSORS} float "
                                               "tensors); the original int8 model is kept", "attempts": attempts}}
    return _adopt(ctx, int8, found, attempts, metrics)


def _name(row: dict) -> str:
    return f"{row['module'] or '(graph)'} {row['op']}"


def _plans(ctx, report: dict, int8: Path):
    """The attempts, in order: more calibration, then 1, 2, ... float tensors (worst first)."""
    from export.quant_debug import tensor_consumers

    calibration = ctx.calibration
    pool = getattr(ctx, "calibration_pool", None)
    if pool is not None and len(pool) > len(calibration):
        calibration = pool[:MAX_CALIBRATION]
        yield {"what": f"calibration on {len(calibration)} images (was {len(ctx.calibration)})",
               "calibration": calibration, "calibration_images": len(calibration), "float_nodes": [],
               "float_tensors": []}
    ranked = [r for r in report["layers"] if r["module"] != "?" and r["share"] > 0]
    readers = tensor_consumers(int8)
    for k in range(1, min(MAX_FLOAT_TENSORS, len(ranked)) + 1):
        rows = ranked[:k]
        nodes = sorted({n for r in rows for n in (r["tensor"], *readers.get(r["tensor"], []))})
        yield {"what": f"{k} tensor(s) in float: {', '.join(_name(r) for r in rows)}", "calibration": calibration,
               "calibration_images": len(calibration), "float_nodes": nodes,
               "float_tensors": [{"tensor": r["tensor"], "module": r["module"], "op": r["op"]} for r in rows]}


def _adopt(ctx, int8: Path, found, attempts: list, metrics: dict) -> dict:
    path, judged, plan = found
    before, after = _host_latency(int8, path, ctx.images[0])
    int8.write_bytes(path.read_bytes())
    record = {"result": f"repaired: {attempts[-1]['what']}", "attempts": attempts,
              "float_layers": plan["float_tensors"], "float_ops": plan["float_nodes"],
              "calibration_images": plan["calibration_images"],
              "latency_host_ms": {"before": before, "after": after,
                                  "note": "this host, 1 thread, median of interleaved runs; not the device's"},
              "original": {k: metrics[k] for k in ("agreement", "cosine", "accuracy", "accuracy_drop_pp", "pass")
                           if k in metrics}}
    return judged | {"debug": metrics["debug"], "repair": record}


def _host_latency(a: Path, b: Path, image: np.ndarray, rounds: int = 5, runs: int = 20) -> tuple[float, float]:
    """Median ms of one invoke of each model on this host, measured interleaved."""
    from contract.card import tensor_spec
    from contract.quant import quantize_input

    interps = [load_interpreter(p, threads=1) for p in (a, b)]
    times: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, interp in enumerate(interps):
            d = interp.get_input_details()[0]
            interp.set_tensor(d["index"], quantize_input(image[None], tensor_spec(d)))
            for _ in range(runs):
                t0 = time.perf_counter()
                interp.invoke()
                times[i].append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times[0])), float(np.median(times[1]))
