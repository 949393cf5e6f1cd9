"""Running .tflite files on the device runtime (ai-edge-litert with XNNPACK, as the device does),
and reading what the runtime made of them: op histogram, delegate partitions, ops left outside.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

__all__ = ["Interpreter", "load_interpreter", "runtime_version", "run_images", "graph_facts"]

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - older devices
    from tflite_runtime.interpreter import Interpreter


def runtime_version() -> str:
    try:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"
    except Exception:  # noqa: BLE001 - any metadata problem means "unknown"
        return "unknown"


def load_interpreter(path: str | Path, *, threads: int = 1) -> Interpreter:
    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    return interp


def run_images(interp: Interpreter, images: np.ndarray) -> np.ndarray:
    """Runs uint8 NHWC images one by one (batch 1, as on device); returns dequantized float logits."""
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    logits = []
    for image in images:
        x = image[None]
        if inp["dtype"] == np.uint8:
            if (in_scale, in_zero) != (1.0, 0):
                x = np.clip(np.round(x / in_scale + in_zero), 0, 255)
            x = x.astype(np.uint8)
        elif inp["dtype"] == np.int8:
            x = np.clip(np.round(x.astype(np.float32) / in_scale + in_zero), -128, 127).astype(np.int8)
        else:
            x = x.astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        if out["dtype"] in (np.uint8, np.int8):
            y = (y.astype(np.float32) - out_zero) * out_scale
        logits.append(y.astype(np.float32))
    return np.stack(logits)


def graph_facts(interp: Interpreter) -> dict:
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
