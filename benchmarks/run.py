"""`make bench`: the benchmark suite behind BENCHMARKS.md.

Exports the family (edgevit_xxs/xs/s, mobilenetv2_100 at 224x224, 1000 classes, latency-ready random
weights), the compute ceiling, prefixes of edgevit_xs (where its time goes), its design variants, and
the trained digits models; times every artifact interleaved round-robin on ai-edge-litert (fp32/fp16/int8, 1 and 2
threads), ONNX Runtime and PyTorch eager; measures the peak memory of a process that loads and runs
each .tflite (device_sim.bench); checks the simulator against the on-device benchmark; evaluates the
goals; writes benchmarks/results/<date>-<host>.json and regenerates BENCHMARKS.md with its plots.

    python -m benchmarks.run                 # full suite (about 10 min on 2 cores)
    python -m benchmarks.run --smoke --img-size 64 --out /tmp/b   # one small model, few rounds (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from benchmarks.goals import evaluate_goals
from benchmarks.models import NATURAL_MEAN, NATURAL_STD, Ceiling, Prefix, latency_ready, natural_images
from benchmarks.sim_check import sim_vs_bench
from benchmarks.soak import soak
from benchmarks.timing import interleaved, litert_runner, onnxruntime_runner, torch_runner

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ("edgevit_xxs", "edgevit_xs", "edgevit_s", "mobilenetv2_100")
DESIGNS = {  # name -> create_model options; "default" is the shipped design
    "default": {}, "gelu": {"act": "gelu"}, "hardswish": {"act": "hardswish"},
    "blockdiag": {"attention": "blockdiag"}, "heads": {"attention": "heads"},
    "s0_layout": {"widths": (32, 48, 96, 176), "depths": (2, 3, 6, 4)},   # EfficientFormerV2-S0's stage layout
}
NO_DIGITS = ("s0_layout",)   # designs measured for latency only (not trained on digits)
THREADS = (1, 2)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def host_info() -> dict:
    from device_sim.report import cpu_info

    cpu, flags = cpu_info()
    wanted = ("sse4_2", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile")
    isa = [f for f in wanted if f in flags]
    return {"cpu": cpu, "isa": isa, "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "hostname": socket.gethostname()}


def _export(model, size, out: Path, formats: str, calib, *, eval_images=None, eval_labels=None,
            mean=NATURAL_MEAN, std=NATURAL_STD, name=None, sample_pack=None) -> dict:
    from export.converter import convert
    from export.formats import needs_calibration, parse_formats

    return convert(model, torch.zeros(1, 3, size, size), out_dir=out, formats=formats, mean=mean, std=std,
                   calibration=calib if needs_calibration(parse_formats(formats)) else None, eval_images=eval_images,
                   eval_labels=eval_labels, name=name, sample_pack=sample_pack, verbose=False)


def _graph(report: dict) -> dict:
    keys = ("num_ops", "transposes", "delegate_partitions", "ops_outside_delegate", "size_mb")
    return {fmt: {k: a.get(k) for k in keys} for fmt, a in report["artifacts"].items()}


def _peak_memory(tflite: Path) -> dict:
    """Peak RSS of a fresh process that loads and runs this .tflite (the on-device benchmark)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "edgevit_cli", "bench", str(tflite), "--threads", "1", "--runs", "20",
               "--min-seconds", "0.2", "--warmup-runs", "3", "--json", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        result = json.loads(out.read_text())["results"][0]
    return {"peak_mb": result["memory_mb"]["overall_peak"], "init_footprint_mb": result["memory_mb"]["init_footprint"]}


def collect(args) -> dict:
    work, size, t0 = Path(args.work), args.img_size, time.perf_counter()
    family = ("edgevit_xxs",) if args.smoke else FAMILY
    designs = {"default": {}} if args.smoke else DESIGNS
    calib = natural_images(16 if args.smoke else 64, size)
    res: dict = {"models": {}, "designs": [], "digits": {}, "ceiling": {}, "probes": {}}
    runners: dict = {}
    trainer = _start_design_training(args, designs)
    torch.set_num_threads(1)
    for name in family:
        _collect_family_member(name, args, calib, res, runners, probe=name == family[-1 if args.smoke else 1])
    _collect_ceiling(work, res, runners)
    _collect_designs(args, designs, calib, res, runners)
    _collect_digits(args, designs, res, runners, trainer)

    log(f"timing {len(runners)} configurations, {args.rounds} interleaved rounds")
    stats = interleaved(runners, rounds=args.rounds, warmup=args.warmup)
    for key, s in stats.items():
        name, config, threads = key.split("|")
        bucket = (res["ceiling"] if name == "ceiling" else res["probes"].get(name) or res["models"].get(name)
                  or res["digits_latency"][name])
        bucket["latency_ms"][f"{config}|{threads}"] = s
    for name in family:
        for fmt in ("fp32", "fp16", "int8"):
            res["models"][name]["memory_mb"][fmt] = _peak_memory(work / name / fmt / "model.tflite")
    log("simulator vs on-device benchmark (trained digits model, and edgevit_xs at full size, int8)")
    checked = {"digits-default/int8": work / "digits" / "default" / "int8"}
    if not args.smoke:
        checked[f"edgevit_xs@{size}/int8"] = work / "edgevit_xs" / "int8"
    res["simulator"] = {"rows": [dict(row, model=label) for label, path in checked.items()
                                 for row in sim_vs_bench(path, threads=(1,) if args.smoke else THREADS)]}
    log(f"soak: the simulator over {args.soak_frames} frames at --max-speed (trained digits model, int8)")
    res["soak"] = soak(work / "digits" / "default" / "int8", frames=args.soak_frames)
    res["seconds_collect"] = time.perf_counter() - t0
    return res


def _collect_family_member(name: str, args, calib, res: dict, runners: dict, *, probe: bool) -> None:
    """Export one family model at the suite's size and queue its runtimes; `probe`: also its prefixes
    (edgevit_xs, or xxs in a smoke run: where its time goes)."""
    import edgevit
    from edgevit.fuse import fold_input_normalization, fuse_for_deploy
    from edgevit.info import count_macs, count_params

    work, size = Path(args.work), args.img_size
    log(f"export {name} @ {size}")
    torch.manual_seed(0)
    model = latency_ready(edgevit.create_model(name, num_classes=1000, img_size=size), calib)
    pack = (calib, np.zeros(len(calib), np.int64))   # frames for the simulator check (labels unused)
    report = _export(model, size, work / name, "onnx,fp32,fp16,int8", calib, name=name, sample_pack=pack)
    res["models"][name] = {"params_m": count_params(model) / 1e6, "gmacs": count_macs(model, size) / 1e9,
                           "attention_blocks": getattr(model, "num_attention_blocks", 0),
                           "graph": _graph(report), "latency_ms": {}, "memory_mb": {}}
    for fmt in ("fp32", "fp16", "int8"):
        for t in THREADS:
            runners[f"{name}|litert-{fmt}|t{t}"] = litert_runner(work / name / fmt / "model.tflite", threads=t)
    runners[f"{name}|onnxruntime-fp32|t1"] = onnxruntime_runner(work / name / "model.onnx", threads=1)
    deploy = fold_input_normalization(fuse_for_deploy(model), NATURAL_MEAN, NATURAL_STD, img_size=size)
    runners[f"{name}|torch-fp32|t1"] = torch_runner(deploy, size)
    if probe:
        _collect_prefixes(name, model, size, work, calib, res, runners)


def _collect_ceiling(work: Path, res: dict, runners: dict) -> None:
    from edgevit.info import count_macs

    log("export the ceiling (1x1 conv 56x56x256->256)")
    torch.manual_seed(0)
    ceiling = Ceiling().eval()
    _export(ceiling, 56, work / "ceiling", "fp32,int8", natural_images(16, 56))
    res["ceiling"] = {"gmacs": count_macs(ceiling, 56) / 1e9, "latency_ms": {}}
    for fmt in ("fp32", "int8"):
        for t in THREADS:
            runners[f"ceiling|litert-{fmt}|t{t}"] = litert_runner(work / "ceiling" / fmt / "model.tflite", threads=t)


def _collect_prefixes(name: str, model, size: int, work: Path, calib, res: dict, runners: dict) -> None:
    """The stem alone, then stem + stage 1, + stage 2, + stage 3 (pooled), exported like the model: the
    differences of consecutive prefixes (and the full model) are the segments of BENCHMARKS.md."""
    from edgevit.info import count_macs

    res["probes_of"] = name
    for k in range(len(model.stages)):
        probe, key = Prefix(model, k).eval(), f"prefix{k}"
        _export(probe, size, work / key, "fp32,int8", calib[:8], eval_images=calib[:2])
        res["probes"][key] = {"stages": k, "gmacs": count_macs(probe, size) / 1e9,
                              "resolution": size // (4 * 2 ** max(k - 1, 0)), "latency_ms": {}}
        for fmt in ("fp32", "int8"):
            runners[f"{key}|litert-{fmt}|t1"] = litert_runner(work / key / fmt / "model.tflite", threads=1)


def _collect_designs(args, designs, calib, res, runners) -> None:
    import edgevit
    from edgevit.info import count_macs, count_params

    size, work = args.img_size, Path(args.work)
    base = "edgevit_xxs" if args.smoke else "edgevit_xs"
    for dname, opts in designs.items():
        if dname == "default":
            res["designs"].append({"name": dname, "model": base, "options": opts,
                                   "graph": res["models"][base]["graph"], "latency_key": base})
            continue
        log(f"export design {dname} @ {size}")
        torch.manual_seed(0)
        model = latency_ready(edgevit.create_model("edgevit_xs", num_classes=1000, img_size=size, **opts), calib)
        report = _export(model, size, work / f"design-{dname}", "fp32,int8", calib, name=f"edgevit_xs-{dname}")
        key = f"design-{dname}"
        res["models"][key] = {"params_m": count_params(model) / 1e6, "gmacs": count_macs(model, size) / 1e9,
                              "attention_blocks": model.num_attention_blocks, "graph": _graph(report),
                              "latency_ms": {}, "memory_mb": {}, "design_only": True}
        for fmt in ("fp32", "int8"):
            runners[f"{key}|litert-{fmt}|t1"] = litert_runner(work / key / fmt / "model.tflite", threads=1)
        res["designs"].append({"name": dname, "model": "edgevit_xs", "options": opts, "graph": _graph(report),
                               "latency_key": key})


def _start_design_training(args, designs) -> subprocess.Popen | None:
    """Design variants train on digits in a background process while the main one exports (the exports
    leave one of the two cores idle)."""
    todo = {k: v for k, v in designs.items() if k not in ("default",) + NO_DIGITS}
    if not (Path(args.run_dir) / "best.pt").is_file():
        raise SystemExit(f"bench: no trained model at {Path(args.run_dir) / 'best.pt'}; run `make train` first")
    if not todo:
        return None
    log_path = Path(args.work) / "train-designs.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.train_designs", str(Path(args.work) / "train"), args.run_dir,
           json.dumps(todo)]
    log(f"training designs {', '.join(todo)} on digits in the background")
    return subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def _collect_digits(args, designs, res, runners, trainer: subprocess.Popen | None) -> None:
    """Trained digits models: the make-train run (edgevit_xs + its MobileNetV2 baseline) and each design."""
    from edgevit.checkpoint import load_checkpoint
    from edgevit.data import load_dataset

    run, work = Path(args.run_dir), Path(args.work)
    checkpoints = {"default": run / "best.pt"}
    if (run / "baseline" / "best.pt").is_file():
        checkpoints["mobilenetv2_100"] = run / "baseline" / "best.pt"
    ref = load_checkpoint(checkpoints["default"])
    splits = load_dataset(ref.dataset.get("spec", "digits"), ref.img_size, seed=ref.dataset.get("split_seed", 0))
    res["digits_latency"] = {}
    calib = splits.train_x[np.random.default_rng(0).choice(len(splits.train_x), 200, replace=False)]
    pack = (splits.test_x, splits.test_y)   # the sample pack, for the simulator check
    _export_digits(checkpoints, work, splits, calib, pack, res, runners)   # while the designs still train
    if trainer is not None:
        log("waiting for the design trainings")
        if trainer.wait() != 0:
            raise SystemExit(f"bench: training the designs failed; see {work / 'train-designs.log'}")
        trained = {d: work / "train" / d / "best.pt" for d in designs if d not in ("default",) + NO_DIGITS}
        _export_digits(trained, work, splits, calib, pack, res, runners)


def _export_digits(checkpoints: dict, work: Path, splits, calib, pack, res: dict, runners: dict) -> None:
    from edgevit.checkpoint import load_checkpoint

    for key, path in checkpoints.items():
        log(f"export digits model {key}")
        ckpt = load_checkpoint(path)
        model = ckpt.build_model()
        report = _export(model, ckpt.img_size, work / "digits" / key, "fp32,int8", calib,
                         eval_images=splits.test_x, eval_labels=splits.test_y, mean=ckpt.mean, std=ckpt.std,
                         name=ckpt.model_spec["name"], sample_pack=pack if key == "default" else None)
        a = report["artifacts"]
        options = {k: v for k, v in ckpt.model_spec.items() if k not in ("name", "num_classes", "img_size")}
        res["digits"][key] = {"model": ckpt.model_spec["name"], "options": options,
                              "pytorch_acc": report["reference"]["accuracy"], "fp32_acc": a["fp32"]["accuracy"],
                              "int8_acc": a["int8"]["accuracy"], "int8_agreement": a["int8"]["agreement"],
                              "int8_mb": a["int8"]["size_mb"], "transposes": a["int8"]["transposes"],
                              "attention_blocks": getattr(model, "num_attention_blocks", 0)}
        res["digits_latency"][f"digits-{key}"] = {"latency_ms": {}}
        for fmt in ("fp32", "int8"):
            runners[f"digits-{key}|litert-{fmt}|t1"] = litert_runner(work / "digits" / key / fmt / "model.tflite",
                                                                     threads=1)


def versions() -> dict:
    from contract.versions import package_versions

    return package_versions(("ai-edge-litert", "onnxruntime", "torch", "tensorflow", "onnx2tf", "onnx", "numpy"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="one small model, few rounds, no training (for tests)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=150, help="interleaved timed rounds (default 150)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--soak-frames", type=int, default=None, help="frames of the soak run (default 20000; smoke 3000)")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "edgevit_xs-digits"), help="the make-train run")
    p.add_argument("--out", default=None, help="folder for the JSON, BENCHMARKS.md and plots (default: the repo)")
    p.add_argument("--work", default=None, help="scratch folder for exported models (default: a temp dir)")
    args = p.parse_args(argv)
    args.soak_frames = args.soak_frames or (3000 if args.smoke else 20_000)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgevit-bench-") as tmp:
        args.work = args.work or tmp
        res = collect(args)
    res.update(schema="edgevit.benchmarks/1", smoke=args.smoke, host=host_info(), versions=versions(),
               created=datetime.now(UTC).isoformat(timespec="seconds"),
               settings={"img_size": args.img_size, "rounds": args.rounds, "warmup": args.warmup,
                         "threads": list(THREADS), "runtime": "ai-edge-litert, XNNPACK on (default)",
                         "torch_threads": 1, "onnxruntime_threads": 1})
    res["goals"] = evaluate_goals(res)
    res["seconds"] = time.perf_counter() - t0
    out = Path(args.out) if args.out else ROOT
    from benchmarks.report import write_outputs

    paths = write_outputs(res, out)
    for g in res["goals"]:
        state = "met" if g["met"] else "NOT met" if g["evaluated"] else "not evaluated"
        log(f"goal {g['id']} {state}: {g['summary']}")
    log(f"wrote {', '.join(str(p) for p in paths)} in {res['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
