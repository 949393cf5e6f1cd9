"""Runs INSIDE the emulated aarch64 Python (numpy and the TFLite runtime only; no project imports):

    python3.11 guest.py REQUEST.json

REQUEST: {"model": .tflite, "threads": 1, "inputs": .npy of N model inputs (N, *input shape), "invokes": K,
"outputs": .npy path or null, "marks": bool}. Loads the model, allocates, then invokes K times cycling through
the inputs; writes the outputs of the first min(K, N) invokes when asked. With "marks", one warm-up inference
comes first and the K are framed by two marks (below): the count between them is K steady inferences, exactly
repeatable (runner.instructions_per_inference).

REQUEST {"segments": [{"model": .tflite, "inputs": .npy}, ...], "threads": 1, "invokes": K} measures many
models in one run: each is loaded, allocated and invoked once (warm-up), then K invokes are framed by two
marks (lseek(-1, MARK, 0), which the counting plugin records and which changes nothing), so the count
between a model's marks is K steady inferences and nothing else.
"""

import json
import os
import sys

import numpy as np

MARK = 0x6564676576697400   # device_sim/arm/insn_count.c: MARK_MAGIC


def _mark() -> None:
    try:
        os.lseek(-1, MARK, 0)
    except OSError:
        pass


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    return Interpreter


def segments(req: dict) -> int:
    Interpreter = _interpreter_class()
    k = int(req["invokes"])
    for seg in req["segments"]:
        interp = Interpreter(model_path=seg["model"], num_threads=int(req.get("threads", 1)))
        interp.allocate_tensors()
        index = interp.get_input_details()[0]["index"]
        interp.set_tensor(index, np.load(seg["inputs"])[0])
        interp.invoke()
        _mark()
        for _ in range(k):
            interp.invoke()
        _mark()
        del interp
    return 0


def main(path: str) -> int:
    req = json.loads(open(path).read())
    if "segments" in req:
        return segments(req)
    Interpreter = _interpreter_class()
    interp = Interpreter(model_path=req["model"], num_threads=int(req.get("threads", 1)))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    k = int(req.get("invokes", 0))
    if k == 0:
        return 0
    xs = np.load(req["inputs"])
    if req.get("marks"):   # steady state: one warm-up inference, then the k counted ones framed by two marks
        interp.set_tensor(inp["index"], xs[0])
        interp.invoke()
        _mark()
    keep = []
    for i in range(k):
        interp.set_tensor(inp["index"], xs[i % len(xs)])
        interp.invoke()
        if req.get("outputs") and i < len(xs):
            keep.append(interp.get_tensor(out["index"]).copy())
    if req.get("marks"):
        _mark()
    if req.get("outputs"):
        np.save(req["outputs"], np.concatenate(keep))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
