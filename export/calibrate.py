"""Activation ranges for full-int8 conversion, recorded on tensors that nothing overwrites.

TFLiteConverter's calibrator runs the float model and reads every tensor's range after its op has run,
but the runtime executes ADD (and other elementwise ops) in place: the residual ADD writes x + f(x)
into the buffer that held f(x). The calibrator then records the sum's range for the branch output f(x),
and every residual branch (a depthwise token mixer, an FFN's projection, MobileNetV2's linear
bottleneck) gets the residual stream's int8 scale instead of its own. Measured on a conv -> depthwise ->
ADD(x) block: the depthwise output spans +-6 but was calibrated to +-170 (the ADD's range), so its int8
output kept a handful of distinct values.

Here the calibration images run once more through the calibrated float model with every tensor
preserved (no in-place reuse, no delegate), the true min/max of each calibrated tensor replaces the
recorded one, and the model is then quantized from those statistics. Runs inside export.tf_worker
(it needs TensorFlow's flatbuffer schema).

The tensors that feed a residual ADD get one more look: a branch's output is heavy-tailed (mostly near
zero, a few large values: MobileNetV2's last projection on glyphs spans +-0.75 with an RMS of 0.02), so
its absolute min/max spends the 256 levels on values that almost never occur. Their range is the one that
minimizes the int8 error (rounding plus clipping) over the calibration images (_mse_ranges).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["true_ranges", "residual_feeds"]


def true_ranges(calibrated: bytes, samples: Iterable[np.ndarray]) -> tuple[bytes, dict]:
    """`calibrated`: a float .tflite with min/max statistics (TFLiteConverter with calibrate-only).
    Returns the same model with every recorded activation range replaced by the range measured with
    all tensors preserved, and a summary {"tensors": n, "corrected": n changed by more than 1%}."""
    import flatbuffers
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(calibrated, 0))
    graph = model.subgraphs[0]
    recorded = {i: t.quantization for i, t in enumerate(graph.tensors)
                if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1}
    interp = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    samples = list(samples)
    lo = {i: np.inf for i in recorded}
    hi = {i: -np.inf for i in recorded}
    for sample in samples:
        interp.set_tensor(inp["index"], np.asarray(sample, dtype=inp["dtype"]).reshape(inp["shape"]))
        interp.invoke()
        for i in recorded:
            value = interp.get_tensor(i)
            lo[i], hi[i] = min(lo[i], float(value.min())), max(hi[i], float(value.max()))
    clipped = _mse_ranges(interp, inp, samples, {i: (lo[i], hi[i]) for i in residual_feeds(interp) if i in recorded})
    lo.update({i: r[0] for i, r in clipped.items()})
    hi.update({i: r[1] for i, r in clipped.items()})
    corrected = 0
    for i, q in recorded.items():
        if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
            continue
        old = max(abs(float(q.min[0])), abs(float(q.max[0])), 1e-12)
        if max(abs(lo[i] - float(q.min[0])), abs(hi[i] - float(q.max[0]))) > 0.01 * old:
            corrected += 1
        q.min, q.max = [lo[i]], [hi[i]]
    builder = flatbuffers.Builder(len(calibrated) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), {"tensors": len(recorded), "corrected": corrected, "clipped": len(clipped)}


def residual_feeds(interp) -> set[int]:
    """Tensors that feed a residual ADD (both operands produced by ops, neither a constant)."""
    ops = interp._get_ops_details()
    produced = {t for op in ops for t in op["outputs"]}
    return {t for op in ops if op["op_name"] == "ADD" and len(op["inputs"]) == 2
            and all(t in produced for t in op["inputs"]) for t in op["inputs"]}


BINS = 2048
SHRINK = np.linspace(0.2, 1.0, 41)   # candidate ranges: the min/max range scaled by these


def _mse_ranges(interp, inp, samples, ranges: dict) -> dict:
    """For each tensor in `ranges` (its calibration min/max), the range of the form k * (min, max) that
    minimizes the expected int8 error over the calibration images: rounding noise inside the range
    (step^2 / 12 per value) plus the clipping error outside it, read off a histogram of the values. A
    residual branch is heavy-tailed (a projection whose outputs are mostly near zero, a few large ones):
    its absolute min/max spends most of the 256 levels on values that almost never occur."""
    hists = {i: np.zeros(BINS) for i, (a, b) in ranges.items() if np.isfinite(a) and np.isfinite(b) and b > a}
    for sample in samples:
        interp.set_tensor(inp["index"], np.asarray(sample, dtype=inp["dtype"]).reshape(inp["shape"]))
        interp.invoke()
        for i in hists:
            a, b = ranges[i]
            hists[i] += np.histogram(interp.get_tensor(i), bins=BINS, range=(a, b))[0]
    out = {}
    for i, counts in hists.items():
        a, b = ranges[i]
        centers = a + (np.arange(BINS) + 0.5) * (b - a) / BINS
        lo0, hi0 = min(a, 0.0), max(b, 0.0)   # int8's range always holds zero
        errors = []
        for k in SHRINK:
            lo, hi = k * lo0, k * hi0
            step = (hi - lo) / 255
            outside = np.maximum(centers - hi, 0) + np.maximum(lo - centers, 0)
            errors.append(float(np.sum(counts * np.where(outside > 0, outside ** 2, step ** 2 / 12))))
        k = SHRINK[int(np.argmin(errors))]
        out[i] = (k * lo0 if a < 0 else a, k * hi0 if b > 0 else b)
    return out
