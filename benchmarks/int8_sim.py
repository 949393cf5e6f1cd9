"""Where a model's int8 error comes from, measured in PyTorch beside the real int8 export: the test-font
top-1 agreement with the float model when only the weights are rounded to int8 (per output channel,
symmetric, as TFLite does), when the activations are rounded too (per tensor, asymmetric, min/max ranges
over the export's 200 calibration images, as TFLite's converter takes them), and with the activation ranges
clipped to a percentile instead (what TFLite's converter cannot do, tried to know whether it would pay),
and with one group of activations left unrounded at a time (a stage; the residual stream, the token mixers, the
FFNs, attention's convs): where the error comes from. The real int8 model's agreement (its export report) stands
beside them.

The simulation rounds the output of every leaf module (convs, linears, activations; a conv followed by
ReLU or ReLU6 only after the activation, which TFLite fuses into it) and of every module whose output has
its input's shape (residual blocks: their ADD), nothing inside attention; it is a
model of TFLite's arithmetic, not TFLite, so read it for the split between weights and activations and
for what clipping would change.

    python -m benchmarks.int8_sim [--runs NAME,...] [--work .bench-work/protocol]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.report import results_path
from benchmarks.run import ROOT, host_info, log
from contract.files import write_json

CALIBRATION = 200                 # the export's default calibration draw (edgevit export --calib-samples)
PERCENTILES = (99.99, 99.9)
SAMPLE = 1_000_000                # values per tensor the percentile is taken from


def _weights_int8(model: nn.Module) -> None:
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            w = mod.weight.data
            shape = (-1,) + (1,) * (w.ndim - 1)
            s = (w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127).view(shape)
            mod.weight.data = torch.round(w / s).clamp(-127, 127) * s


def _points(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Leaf modules, and modules whose output has their input's shape (a residual block's ADD)."""
    shapes: dict[nn.Module, bool] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(
        m, isinstance(o, torch.Tensor) and bool(i) and isinstance(i[0], torch.Tensor) and i[0].shape == o.shape))
        for m in model.modules() if m is not model]
    with torch.no_grad():
        model(x[:2])
    for h in hooks:
        h.remove()
    fused = {id(seq[i]) for seq in model.modules() if isinstance(seq, nn.Sequential)
             for i in range(len(seq) - 1) if isinstance(seq[i], (nn.Conv2d, nn.Linear))
             and isinstance(seq[i + 1], (nn.ReLU, nn.ReLU6))}   # TFLite fuses the activation into the conv
    leaves = [m for m in shapes if not list(m.children()) and id(m) not in fused]
    blocks = [m for m, same in shapes.items() if same and list(m.children()) and not isinstance(m, nn.Sequential)]
    return leaves + blocks


def _fake_quant(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    s = max(hi - lo, 1e-12) / 255
    z = round(-lo / s) - 128
    return (torch.clamp(torch.round(t / s) + z, -128, 127) - z) * s


def _ranges(model: nn.Module, points: list[nn.Module], calib: torch.Tensor) -> dict:
    seen: dict[nn.Module, list[torch.Tensor]] = {}
    hooks = [p.register_forward_hook(lambda m, i, o: seen.setdefault(m, []).append(o.detach().flatten()))
             for p in points]
    with torch.no_grad():
        model(calib)
    for h in hooks:
        h.remove()
    gen = torch.Generator().manual_seed(0)
    out = {}
    for p, vals in seen.items():
        v = torch.cat(vals)
        pick = v[torch.randperm(len(v), generator=gen)[:SAMPLE]] if len(v) > SAMPLE else v
        out[p] = {"minmax": (float(v.min()), float(v.max()))} | {
            f"p{q:g}": (float(torch.quantile(pick, 1 - q / 100)), float(torch.quantile(pick, q / 100)))
            for q in PERCENTILES}
    return out


def _agreement(model: nn.Module, x: torch.Tensor, ref: np.ndarray, ranges: dict | None, how: str) -> float:
    hooks = [p.register_forward_hook(lambda m, i, o: _fake_quant(o, *ranges[m][how])) for p in ranges] \
        if ranges else []
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    for h in hooks:
        h.remove()
    return float(np.mean(pred == ref))


def _group(name: str) -> list[str]:
    """The groups a rounding point belongs to: its stage, and its kind (the residual stream's block outputs, the
    token mixers, the FFNs, attention's q/k/v/proj convs)."""
    parts = name.split(".")
    groups = [".".join(parts[:2]) if parts[0] == "stages" else "stem and head"]
    if parts[0] == "stages" and len(parts) == 3:
        groups.append("residual stream")
    groups += [kind for key, kind in ((".mixer", "token mixers"), (".ffn", "FFNs")) if key in name]
    if any(f".mixer.{c}" in name for c in ("q", "k", "v", "proj")):
        groups.append("attention convs")
    return groups


def _kept_float(model: nn.Module, x: torch.Tensor, ref: np.ndarray, ranges: dict) -> dict[str, float]:
    """Agreement with each group of activations left unrounded (the rest rounded as TFLite does): which part of
    the network the int8 error comes from."""
    names = {m: n for n, m in model.named_modules()}
    groups: dict[str, list[nn.Module]] = {}
    for point in ranges:
        for g in _group(names[point]):
            groups.setdefault(g, []).append(point)
    return {g: _agreement(model, x, ref, {p: r for p, r in ranges.items() if p not in points}, "minmax")
            for g, points in sorted(groups.items())}


def _stream_ranges(model: nn.Module, calib: torch.Tensor) -> dict[int, torch.Tensor]:
    """Per stage of an EdgeViT: each channel's largest |value| on its residual stream (the stage's input, the
    stream between token mixer and FFN, each block's output) over the calibration images."""
    acc: dict[int, torch.Tensor] = {}

    def note(i: int, t: torch.Tensor) -> None:
        a = t.detach().abs().amax(dim=(0, 2, 3))
        acc[i] = torch.maximum(acc[i], a) if i in acc else a

    hooks = []
    for i, stage in enumerate(model.stages):
        blocks = [b for b in stage if hasattr(b, "ffn")]
        hooks.append(blocks[0].register_forward_pre_hook(lambda m, inp, i=i: note(i, inp[0])))
        for b in blocks:
            hooks.append(b.ffn.register_forward_pre_hook(lambda m, inp, i=i: note(i, inp[0])))
            hooks.append(b.register_forward_hook(lambda m, inp, out, i=i: note(i, out)))
    with torch.no_grad():
        model(calib)
    for h in hooks:
        h.remove()
    return acc


def _conv(m: nn.Module) -> nn.Module:
    return m if isinstance(m, (nn.Conv2d, nn.Linear)) else next(c for c in m.modules() if isinstance(c, nn.Conv2d))


@torch.no_grad()
def equalize_stream(model: nn.Module, calib: torch.Tensor, alpha: float) -> None:
    """Float-exact per-channel rescaling of a fused EdgeViT's residual stream (cross-layer equalization through
    the residual adds, SmoothQuant's migration strength `alpha`): stage i's stream becomes x / s_i with
    s_i = (range_c / max range)^alpha, folded into the conv that writes it (stem or downsample: rows / s), the
    branch outputs that add to it (mixer bias, attention proj, fc2: rows / s), the convs that read it (q, k, v,
    fc1, the next downsample: columns * s) and the classifier (columns * s; pooling is linear). The depthwise mixer
    is per channel: only its bias moves. ReLU after the stem commutes with a positive scale."""
    ranges = _stream_ranges(model, calib)
    scales = {i: (r.clamp_min(1e-6) / r.max()) ** alpha for i, r in ranges.items()}
    for i, stage in enumerate(model.stages):
        s, col = scales[i], scales[i].view(1, -1, 1, 1)
        writer = _conv(model.stem[-1]) if i == 0 else stage[0]
        if i:
            writer.weight.mul_(scales[i - 1].view(1, -1, 1, 1))
        writer.weight.div_(s.view(-1, 1, 1, 1))
        writer.bias.div_(s)
        for b in (b for b in stage if hasattr(b, "ffn")):
            if hasattr(b.mixer, "dw"):
                _conv(b.mixer.dw).bias.div_(s)
            else:
                for c in (b.mixer.q, b.mixer.k, b.mixer.v):
                    c.weight.mul_(col)
            for out in ([] if hasattr(b.mixer, "dw") else [b.mixer.proj]) + [b.ffn.fc2]:
                _conv(out).weight.div_(s.view(-1, 1, 1, 1))
                _conv(out).bias.div_(s)
            _conv(b.ffn.fc1).weight.mul_(col)
    model.head.weight.mul_(scales[len(model.stages) - 1].view(1, -1))


EQUALIZE_ALPHAS = (0.5,)


def _equalized(model: nn.Module, x: torch.Tensor, ref: np.ndarray, calib: torch.Tensor) -> dict[str, float]:
    """Agreement (weights and activations rounded) after equalize_stream, per alpha; {} for a model that is not an
    EdgeViT. Checks the rescaling left the float model's outputs as they were."""
    import copy

    from edgevit.models.efficientformer import EdgeViT

    if not isinstance(model, EdgeViT):
        return {}
    out = {}
    with torch.no_grad():
        logits = model(x)
    for alpha in EQUALIZE_ALPHAS:
        m = copy.deepcopy(model)
        equalize_stream(m, calib, alpha)
        with torch.no_grad():
            drift = float((m(x) - logits).abs().max())
        assert drift < 1e-3 * float(logits.abs().max()), f"equalization changed the float model ({drift})"
        _weights_int8(m)
        out[f"alpha{alpha:g}"] = _agreement(m, x, ref, _ranges(m, _points(m, x), calib), "minmax")
    return out


def diagnose(run: Path, export: Path | None) -> dict:
    from edgevit.checkpoint import load_checkpoint
    from edgevit.data import load_dataset
    from edgevit.fuse import fuse_for_deploy

    ck = load_checkpoint(run / "best.pt")
    splits = load_dataset(ck.dataset.get("spec") or ck.dataset.get("name", "digits"), ck.img_size,
                          seed=int(ck.dataset.get("split_seed", 0)))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (ck.mean, ck.std))

    def prep(a: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255 - mean) / std

    rng = np.random.default_rng(0)   # the export's calibration draw (export.from_checkpoint, --seed 0)
    calib = prep(splits.train_x[np.sort(rng.choice(len(splits.train_x), CALIBRATION, replace=False))])
    x = prep(splits.test_x)
    model = fuse_for_deploy(ck.build_model().eval(), strict=False)
    with torch.no_grad():
        ref = model(x).argmax(1).numpy()
    equalized = _equalized(model, x, ref, calib)
    _weights_int8(model)
    points = _points(model, x)
    ranges = _ranges(model, points, calib)
    out = {"run": run.name, "model": ck.model_spec["name"], "test_images": len(x), "points": len(points),
           "weights_int8": _agreement(model, x, ref, None, ""),
           "weights_and_activations": _agreement(model, x, ref, ranges, "minmax")}
    out |= {f"clipped_p{q:g}": _agreement(model, x, ref, ranges, f"p{q:g}") for q in PERCENTILES}
    out["kept_float"] = _kept_float(model, x, ref, ranges)
    if equalized:
        out["stream_equalized"] = equalized
    report = export / "export_report.json" if export else None
    if report and report.is_file():
        out["tflite_int8"] = json.loads(report.read_text())["artifacts"]["int8"]["agreement"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_sim", description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / ".bench-work" / "protocol"))
    p.add_argument("--runs", default="", help="comma-separated run names (default: every run in WORK/train)")
    args = p.parse_args(argv)
    work = Path(args.work)
    names = [n for n in args.runs.split(",") if n] or sorted(
        d.name for d in (work / "train").glob("*") if (d / "best.pt").is_file() and (d / "metrics.json").is_file())
    if not names:
        raise SystemExit(f"int8-sim: no finished run in {work / 'train'}; run `make bench-protocol` first")
    t0, rows = time.perf_counter(), []
    for name in names:
        if not (work / "train" / name / "best.pt").is_file():
            raise SystemExit(f"int8-sim: {work / 'train' / name / 'best.pt'} does not exist; give a finished run")
        rows.append(diagnose(work / "train" / name, work / "export" / name))
        r = rows[-1]
        log(f"{name}: agreement weights int8 {100 * r['weights_int8']:.2f}%, + activations "
            f"{100 * r['weights_and_activations']:.2f}%, clipped at 99.99% {100 * r['clipped_p99.99']:.2f}%"
            + "".join(f", stream equalized ({k}) {100 * v:.2f}%" for k, v in r.get("stream_equalized", {}).items())
            + (f", TFLite int8 {100 * r['tflite_int8']:.2f}%" if "tflite_int8" in r else ""))
    res = {"schema": "edgevit.int8-sim/1", "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": host_info(), "calibration_images": CALIBRATION, "runs": rows,
           "seconds": round(time.perf_counter() - t0, 1)}
    out = results_path(ROOT, "int8-sim-", res)
    write_json(out, res)
    log(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
