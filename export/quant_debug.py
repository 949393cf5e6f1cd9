"""The int8 debugger: which layer hurts, by how much, and which PyTorch module it came from.

`quant_report(export_dir)` runs the export's float ONNX model (every intermediate tensor exposed, in
ONNX Runtime) and its int8 .tflite (every tensor preserved, on the runtime's reference kernels) on the
same images, pairs each int8 activation with the float tensor it stands for, and measures per layer:
- sqnr_db: signal-to-quantization-noise of the int8 tensor against its float counterpart, with every
  earlier layer's error included (what the device sees at that point);
- local_sqnr_db: the noise this tensor's own quantization adds: the float values rounded and clipped
  onto its own scale and zero point, per channel, the median over channels (a wide-range activation
  whose scale fits one outlier channel and crushes the others scores low here, wherever it sits);
- share: this layer's share of the model's int8 error, estimated first-order as its local noise-to-signal
  ratio over the sum of all layers' (independent noise sources add up, each normalized by its signal);
- cosine, scale, zero point, the float range.
The pairing: same shape (NHWC against NCHW transposed, or as is), the float tensor with the highest cosine
on the first image (>= MATCH_COSINE). The module is the PyTorch module path the ONNX exporter records on
each node (`pkg.torch.onnx.name_scopes`), without the input-normalization wrapper's "model." prefix: the
names of the deployed model (`edgevit.fuse_for_deploy` of the one exported), where a folded conv+BN block
`<block>` becomes `<block>.0` (the conv) and `<block>.1` (its activation); "" is the graph's own glue.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contract.errors import UserError

__all__ = ["quant_report", "table", "plot", "LayerRow", "tensor_consumers", "MATCH_COSINE"]

MATCH_COSINE = 0.5
DEFAULT_IMAGES = 32
MAX_DB = 120.0      # SQNR of a tensor int8 holds exactly (no noise at all)


@dataclass
class LayerRow:
    order: int            # position of the op in the int8 graph
    tensor: str           # the int8 tensor's name (the converter's node name: what a denylist names)
    op: str               # TFLite op that produced it
    module: str           # PyTorch module path ("?" when no float tensor matched)
    onnx_tensor: str
    shape: list
    scale: float
    zero_point: int
    float_min: float
    float_max: float
    sqnr_db: float
    local_sqnr_db: float
    cosine: float
    share: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready: an unpaired tensor's measurements are null."""
        return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in asdict(self).items()}


def _db(signal: float, noise: float) -> float:
    """Signal-to-noise in dB, capped at MAX_DB (a tensor int8 represents exactly)."""
    return MAX_DB if noise <= 0 else min(MAX_DB, 10.0 * float(np.log10(max(signal, 1e-30) / noise)))


def _onnx_session(onnx_path: Path):
    """An ONNX Runtime session that returns every node output, and each output's module path."""
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:   # noqa: BLE001 - a damaged file raises protobuf's DecodeError, or others
        raise _unreadable(onnx_path, "an ONNX model", e) from None
    scopes, known = {}, {o.name for o in model.graph.output}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        path = _module_path(meta.get("pkg.torch.onnx.name_scopes", ""))
        for out in node.output:
            scopes[out] = path
            if out and out not in known:
                model.graph.output.append(onnx.ValueInfoProto(name=out))
                known.add(out)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:   # noqa: BLE001 - ONNX Runtime raises its own types for a graph it cannot load
        raise _unreadable(onnx_path, "an ONNX model ONNX Runtime can load", e) from None
    return session, scopes


def _unreadable(path: Path, what: str, e: Exception) -> UserError:
    reason = " ".join(str(e).split())[:160] or type(e).__name__
    return UserError(f"{path} is not {what} ({reason}); it is damaged or was replaced: re-run `edgevit export` "
                     "with onnx and int8 in --formats")


def _module_path(scopes: str) -> str:
    """The exporter's name scopes ("['', 'model', 'model.stages', ..., 'node']") -> the deepest module path."""
    import ast

    try:
        parts = [p for p in ast.literal_eval(scopes) if p] if scopes else []
    except (ValueError, SyntaxError):
        return ""
    modules = parts[:-1]   # the last entry names the node itself
    path = modules[-1] if modules else ""
    return path[len("model."):] if path.startswith("model.") else "" if path == "model" else path


def _tflite_debug(int8_path: Path):
    """The int8 model on the reference kernels (a delegate hides its intermediate tensors), every tensor
    kept; and the op outputs to inspect: (op order, tensor index, op name)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interp = Interpreter(model_path=str(int8_path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:   # what the runtime raises for a file that is not a model
        raise _unreadable(int8_path, "a TFLite model", e) from None
    outputs = []
    for op in interp._get_ops_details():
        for t in op["outputs"]:
            d = interp._get_tensor_details(t, 0)
            if np.dtype(d["dtype"]) in (np.int8, np.uint8) and d["quantization"][0] > 0:
                outputs.append((op["index"], t, op["op_name"]))
    return interp, outputs


def tensor_consumers(int8_path: Path) -> dict[str, list[str]]:
    """int8 tensor name -> output names of the ops that read it (to keep a tensor in float, its producer
    and its readers must both stay float)."""
    from contract.runtime import interpreter_class

    interp = interpreter_class()(model_path=str(int8_path))
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    readers: dict[str, list[str]] = {}
    for op in interp._get_ops_details():
        for t in op["inputs"]:
            if t in names:
                readers.setdefault(names[t], []).extend(names[o] for o in op["outputs"])
    return readers


def residual_feeds(int8_path: Path) -> set[str]:
    """Names of the int8 tensors that feed a residual ADD: each must keep its own scale, not the stream's
    (export.calibrate, whose rule picks them)."""
    from contract.runtime import interpreter_class
    from export.calibrate import residual_feeds as feeds

    interp = interpreter_class()(model_path=str(int8_path))
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    return {names[t] for t in feeds(interp)}


def _residual_summary(int8_path: Path, rows: list) -> dict:
    """The residual ADDs' inputs: how many, how many paired with a float tensor, and the worst local SQNR."""
    feeds = residual_feeds(int8_path)
    checked = [r for r in rows if r.tensor in feeds and np.isfinite(r.local_sqnr_db)]
    worst = min(checked, key=lambda r: r.local_sqnr_db) if checked else None
    return {"feeds": len(feeds), "checked": len(checked),
            "worst_local_sqnr_db": None if worst is None else float(worst.local_sqnr_db),
            "worst_module": None if worst is None else worst.module,
            "worst_tensor": None if worst is None else worst.tensor}


def _as_nhwc(value: np.ndarray, like: tuple) -> np.ndarray | None:
    """The ONNX tensor in the int8 tensor's layout, or None when the shapes cannot be the same tensor."""
    if tuple(value.shape) == like:
        return value
    if value.ndim == 4 and len(like) == 4 and tuple(value.transpose(0, 2, 3, 1).shape) == like:
        return value.transpose(0, 2, 3, 1)
    return None


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def _match(floats: dict, quant: dict) -> dict:
    """int8 tensor index -> (ONNX name, whether it is transposed): the same-shaped float tensor with the
    highest cosine on this image."""
    pairs = {}
    for t, q in quant.items():
        best, best_cos = None, MATCH_COSINE
        for name, value in floats.items():
            v = _as_nhwc(value, q.shape)
            if v is not None and (c := _cosine(v, q)) > best_cos:
                best, best_cos = name, c
        if best is not None:
            pairs[t] = (best, floats[best].ndim == 4 and tuple(floats[best].shape) != q.shape)
    return pairs


class _Sums:
    """Running sums over images, per channel (the last axis: NHWC channels, or features)."""

    def __init__(self):
        self.signal = self.noise = self.local = None
        self.dot = self.q2 = 0.0
        self.lo, self.hi = float("inf"), float("-inf")

    def add(self, ref: np.ndarray, deq: np.ndarray, local: np.ndarray) -> None:
        ref, deq = ref.astype(np.float64), deq.astype(np.float64)
        axes = tuple(range(ref.ndim - 1))
        parts = ((ref ** 2).sum(axes), ((deq - ref) ** 2).sum(axes), ((local - ref) ** 2).sum(axes))
        if self.signal is None:
            self.signal, self.noise, self.local = parts
        else:
            self.signal, self.noise, self.local = (a + b for a, b in zip((self.signal, self.noise, self.local), parts))
        self.dot += float((ref * deq).sum())
        self.q2 += float((deq ** 2).sum())
        self.lo, self.hi = min(self.lo, float(ref.min())), max(self.hi, float(ref.max()))

    def local_db(self) -> float:
        """Median over the channels that carry signal of each channel's own rounding-and-clipping SQNR: a
        per-tensor scale stretched by one outlier channel crushes the others, which a tensor-wide SQNR hides
        behind the outlier's power."""
        live = self.signal > 1e-12 * max(float(self.signal.max()), 1e-30)
        if not live.any():
            return MAX_DB
        return float(np.median([_db(s, n) for s, n in zip(self.signal[live], self.local[live])]))


def _requantized(ref: np.ndarray, scale: float, zero: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.clip(np.round(ref / scale) + zero, info.min, info.max)
    return ((q - zero) * scale).astype(np.float32)


def quant_report(export_dir: str | Path | None = None, *, images: np.ndarray | None = None,
                 num_images: int = DEFAULT_IMAGES, onnx_path: Path | None = None, int8_path: Path | None = None,
                 progress=None) -> dict:
    """The ranked per-layer table of an export folder (model.onnx + int8/model.tflite + samples.npz), or of
    an explicit onnx_path + int8_path + images (uint8 NHWC RGB at the model's size)."""
    t0 = time.perf_counter()
    root = Path(export_dir) if export_dir is not None else None
    int8_path = Path(int8_path or root / "int8" / "model.tflite")
    images = _images(root, images, num_images)
    session, scopes = _onnx_session(Path(onnx_path or root / "model.onnx"))
    interp, outputs = _tflite_debug(int8_path)
    details = {t: interp._get_tensor_details(t, 0) for _, t, _ in outputs}
    out_names = [o.name for o in session.get_outputs()]
    logits_name = session.get_outputs()[0].name
    sums, pairs, agree, final_out = {}, None, [], interp.get_output_details()[0]
    for i, image in enumerate(images):
        floats = dict(zip(out_names, session.run(None, {session.get_inputs()[0].name:
                                                        image.transpose(2, 0, 1)[None].astype(np.float32)})))
        quant = _run_int8(interp, image, details)
        if pairs is None:
            pairs = _match(floats, quant)
        for t, (name, transposed) in pairs.items():
            ref = floats[name].transpose(0, 2, 3, 1) if transposed else floats[name]
            scale, zero = details[t]["quantization"]
            local = _requantized(ref, scale, zero, details[t]["dtype"])
            sums.setdefault(t, _Sums()).add(ref, quant[t], local)
        agree.append(int(np.argmax(floats[logits_name])) == int(np.argmax(_final(interp, final_out))))
        if progress is not None:
            progress(i + 1, len(images))
    rows = _rows(outputs, details, pairs or {}, sums, scopes)
    return {"model": str(int8_path), "images": len(images), "agreement": float(np.mean(agree)),
            "layers": [r.as_dict() for r in rows], "matched": len(pairs or {}), "int8_tensors": len(outputs),
            "residual": _residual_summary(int8_path, rows),
            "seconds": time.perf_counter() - t0,
            "how": __doc__.split("\n\n")[1].strip()}


def _images(root: Path, images, num_images: int) -> np.ndarray:
    if images is None:
        from contract.card import SAMPLE_PACK

        pack = root / SAMPLE_PACK
        if not pack.is_file():
            raise UserError(f"{pack} not found: give images, or point at a folder written by `edgevit export`")
        try:
            with np.load(pack) as npz:
                images = npz["images"]
        except Exception as e:   # noqa: BLE001 - a damaged zip, a pickle, no "images": all mean "not ours"
            raise _unreadable(pack, "a sample pack (images)", e) from None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
            raise UserError(f"{pack}: images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}; "
                            "re-run `edgevit export`")
    return np.asarray(images[:num_images], np.uint8)


def _run_int8(interp, image: np.ndarray, details: dict) -> dict:
    from contract.card import tensor_spec
    from contract.quant import quantize_input

    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], quantize_input(image[None], tensor_spec(inp)))
    interp.invoke()
    out = {}
    for t, d in details.items():
        scale, zero = d["quantization"]
        out[t] = (interp.get_tensor(t).astype(np.float32) - zero) * scale
    return out


def _final(interp, detail) -> np.ndarray:
    from contract.card import tensor_spec
    from contract.quant import dequantize_output

    return dequantize_output(interp.get_tensor(detail["index"]), tensor_spec(detail))


def _rows(outputs, details, pairs, sums, scopes) -> list[LayerRow]:
    rows = []
    for order, t, op in outputs:
        d, s = details[t], sums.get(t)
        name = pairs.get(t, ("", False))[0]
        scale, zero = d["quantization"]
        rows.append(LayerRow(
            order=order, tensor=d["name"], op=op, module=scopes.get(name, "?") if name else "?", onnx_tensor=name,
            shape=[int(v) for v in d["shape"]], scale=float(scale), zero_point=int(zero),
            float_min=s.lo if s else float("nan"), float_max=s.hi if s else float("nan"),
            sqnr_db=_db(float(s.signal.sum()), float(s.noise.sum())) if s else float("nan"),
            local_sqnr_db=s.local_db() if s else float("nan"),
            cosine=s.dot / max(np.sqrt(float(s.signal.sum()) * s.q2), 1e-30) if s else float("nan")))
    nsr = {r.tensor: 10 ** (-r.local_sqnr_db / 10) for r in rows if np.isfinite(r.local_sqnr_db)
           and r.local_sqnr_db < MAX_DB}
    total = sum(nsr.values()) or 1.0
    for r in rows:
        r.share = nsr.get(r.tensor, 0.0) / total
    return sorted(rows, key=lambda r: (-r.share, r.order))


def table(report: dict, top: int = 15) -> str:
    """The ranked table (worst first), as printed by `edgevit quant-report`."""
    lines = [f"int8 layers ranked by their share of the int8 error ({report['images']} images; top-1 agreement "
             f"with float {100 * report['agreement']:.1f}%; {report['matched']} of {report['int8_tensors']} int8 "
             "tensors paired with a float tensor)",
             f"  {'#':>3} {'share':>6} {'local dB':>8} {'SQNR dB':>8} {'cosine':>7} {'scale':>9} "
             f"{'float range':>17}  {'op':<16} module"]
    for i, r in enumerate([r for r in report["layers"] if r["module"] != "?"][:top], 1):
        rng = f"[{r['float_min']:.3g}, {r['float_max']:.3g}]"
        lines.append(f"  {i:>3} {100 * r['share']:>5.1f}% {r['local_sqnr_db']:>8.1f} {r['sqnr_db']:>8.1f} "
                     f"{r['cosine']:>7.4f} {r['scale']:>9.3g} {rng:>17}  {r['op']:<16} {r['module'] or '(graph)'}")
    res = report.get("residual") or {}
    if res.get("worst_local_sqnr_db") is not None:
        lines.append(f"residual ADD inputs: {res['checked']} of {res['feeds']} paired; worst local SQNR "
                     f"{res['worst_local_sqnr_db']:.1f} dB ({res['worst_module'] or res['worst_tensor']})")
    return "\n".join(lines)


def plot(report: dict, path: Path, title: str, top: int = 15) -> None:
    """Left: SQNR along the graph (accumulated, and each tensor's own); right: the top shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["layers"] if r["module"] != "?"]
    order = sorted(rows, key=lambda r: r["order"])
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot([r["order"] for r in order], [r["sqnr_db"] for r in order], lw=1, label="SQNR vs float (accumulated)")
    ax.scatter([r["order"] for r in order], [r["local_sqnr_db"] for r in order], s=8, color="tab:red",
               label="local SQNR (this tensor's own rounding and clipping)")
    ax.set_xlabel("op index in the int8 graph")
    ax.set_ylabel("dB (higher is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    worst = report["layers"][:top][::-1]
    bars.barh(range(len(worst)), [100 * r["share"] for r in worst], color="tab:red")
    bars.set_yticks(range(len(worst)), [f"{r['module'] or '(graph)'} {r['op']}"[:48] for r in worst], fontsize=7)
    bars.set_xlabel("share of the int8 error (%)")
    bars.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
