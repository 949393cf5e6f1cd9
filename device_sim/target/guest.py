"""Runs INSIDE the emulated aarch64 Python (numpy and the TFLite runtime only; no project imports):

    python3.11 guest.py REQUEST.json

REQUEST: {"model": .tflite, "threads": 1, "inputs": .npy of N model inputs (N, *input shape), "invokes": K,
"outputs": .npy path or null}. Loads the model, allocates, then invokes K times cycling through the
inputs; writes the outputs of the first min(K, N) invokes when asked. K = 0 loads and allocates only:
the difference of two instruction counts (K and 0 invokes) is the cost of K steady inferences.
"""

import json
import sys

import numpy as np


def main(path: str) -> int:
    req = json.loads(open(path).read())
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    interp = Interpreter(model_path=req["model"], num_threads=int(req.get("threads", 1)))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    k = int(req.get("invokes", 0))
    if k == 0:
        return 0
    xs = np.load(req["inputs"])
    keep = []
    for i in range(k):
        interp.set_tensor(inp["index"], xs[i % len(xs)])
        interp.invoke()
        if req.get("outputs") and i < len(xs):
            keep.append(interp.get_tensor(out["index"]).copy())
    if req.get("outputs"):
        np.save(req["outputs"], np.concatenate(keep))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
