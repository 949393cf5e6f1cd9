"""PyTorch -> ONNX: static shape, input `image`, output `logits`, checked, and verified against
PyTorch with ONNX Runtime.

Exporter choice (docs/TOOLCHAIN.md): the dynamo exporter at opset 20. At opset 18 GELU becomes
Erf math that onnx2tf can only express as a Flex op the light runtimes cannot run; opset 20 emits
one `Gelu` node, which maps to the TFLite GELU builtin.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.errors import UserError

__all__ = ["OPSET", "export_onnx", "run_onnx"]

OPSET = 20


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: Path, *, opset: int = OPSET) -> None:
    """Writes a self-contained .onnx (weights embedded) and runs onnx.checker on it."""
    import onnx

    model = model.eval()
    # the exporter's step-by-step prints and its "torchvision is not installed" warnings say nothing to a user
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example_input,), str(path), input_names=["image"], output_names=["logits"],
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
        except Exception as e:  # the exporter raises many types; all mean "this model does not export"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"ONNX export failed: {first[:300]}") from None
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    names = ([i.name for i in graph.input], [o.name for o in graph.output])
    if names != (["image"], ["logits"]):
        raise UserError(f"ONNX graph has inputs/outputs {names}; a classifier must take one image and return logits")


def run_onnx(path: Path, images_nchw: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """ONNX Runtime (CPU) logits for float NCHW images."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    static_batch = session.get_inputs()[0].shape[0]
    step = static_batch if isinstance(static_batch, int) else batch_size
    out = [session.run(["logits"], {"image": images_nchw[i:i + step].astype(np.float32)})[0]
           for i in range(0, len(images_nchw), step)]
    return np.concatenate(out)
