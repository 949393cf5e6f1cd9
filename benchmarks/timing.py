"""Interleaved latency measurement: every configuration (model x format x runtime x threads) runs once
per round, round-robin, so the drift and noise of a shared machine hit all of them alike.
Each configuration warms up before the first round. Numbers are host latency in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["litert_runner", "onnxruntime_runner", "torch_runner", "interleaved"]


def litert_runner(path, *, threads: int) -> Callable[[], None]:
    from contract.runtime import interpreter_class

    interp = interpreter_class()(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    dtype = np.dtype(inp["dtype"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, inp["shape"]).astype(dtype) if dtype.kind in "iu" else \
        rng.uniform(0, 255, inp["shape"]).astype(dtype)

    def run() -> None:
        interp.set_tensor(inp["index"], x)
        interp.invoke()

    return run


def onnxruntime_runner(path, *, threads: int) -> Callable[[], None]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    return lambda: session.run(None, {"image": x})


def torch_runner(model, size: int) -> Callable[[], None]:
    """PyTorch eager fp32 on the deploy (folded) model; threads follow torch.set_num_threads."""
    import torch

    x = torch.rand(1, 3, size, size) * 255

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def interleaved(runners: dict[str, Callable[[], None]], *, rounds: int, warmup: int = 5,
                progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """{name: {min, p50, p90, mean, runs}} in ms after `warmup` untimed calls each."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) * 1e3)
        if progress is not None:
            progress(r + 1)
    return {name: {"min": float(np.min(t)), "p50": float(np.median(t)), "p90": float(np.percentile(t, 90)),
                   "mean": float(np.mean(t)), "runs": len(t)} for name, t in times.items()}
