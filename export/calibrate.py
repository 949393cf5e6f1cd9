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
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["true_ranges"]


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
    lo = {i: np.inf for i in recorded}
    hi = {i: -np.inf for i in recorded}
    for sample in samples:
        interp.set_tensor(inp["index"], np.asarray(sample, dtype=inp["dtype"]).reshape(inp["shape"]))
        interp.invoke()
        for i in recorded:
            value = interp.get_tensor(i)
            lo[i], hi[i] = min(lo[i], float(value.min())), max(hi[i], float(value.max()))
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
    return bytes(builder.Output()), {"tensors": len(recorded), "corrected": corrected}
