"""Running .tflite files on the device runtime (ai-edge-litert with XNNPACK, as the device does),
and reading what the runtime made of them: op histogram, delegate partitions, ops left outside.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from contract.card import tensor_spec
from contract.images import resize_to_model
from contract.quant import dequantize_output, quantize_input
from contract.runtime import interpreter_class

__all__ = ["load_interpreter", "run_images", "graph_facts"]


def load_interpreter(path: str | Path, *, threads: int = 1):
    interp = interpreter_class()(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    return interp


def run_images(interp, images: np.ndarray) -> np.ndarray:
    """Runs uint8 RGB images one by one (batch 1, as on the device) through the device's own
    preprocessing (contract: resize policy, input quantization) and output dequantization; returns
    float logits (N, C)."""
    in_spec = tensor_spec(interp.get_input_details()[0])
    out_spec = tensor_spec(interp.get_output_details()[0])
    index_in, index_out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    _, height, width, _ = in_spec["shape"]
    logits = []
    for image in images:
        x = quantize_input(resize_to_model(image, width, height)[None], in_spec)
        interp.set_tensor(index_in, x)
        interp.invoke()
        logits.append(dequantize_output(interp.get_tensor(index_out)[0], out_spec))
    return np.stack(logits)


def graph_facts(interp) -> dict:
    """Op histogram of the model, delegate partitions, and the ops the delegate did not take.

    After delegation, each DELEGATE node replaces one partition; walking back from its outputs to
    its inputs recovers the nodes it took. Everything else runs on the built-in kernels."""
    ops = interp._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    graph_ops = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {t: o["index"] for o in graph_ops for t in o["outputs"]}
    by_index = {o["index"]: o for o in ops}
    taken: set[int] = set()
    for d in delegates:
        stop, stack = set(d["inputs"]), list(d["outputs"])
        while stack:
            t = stack.pop()
            if t in stop or t not in producer or producer[t] in taken:
                continue
            taken.add(producer[t])
            stack.extend(by_index[producer[t]]["inputs"])
    outside = Counter(o["op_name"] for o in graph_ops if o["index"] not in taken)
    return {
        "ops": dict(sorted(Counter(o["op_name"] for o in graph_ops).items())),
        "num_ops": len(graph_ops),
        "transposes": sum(o["op_name"] == "TRANSPOSE" for o in graph_ops),
        "delegate_partitions": len(delegates),
        "ops_outside_delegate": dict(sorted(outside.items())),
    }
