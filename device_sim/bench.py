"""On-device benchmark: `python -m device_sim.bench MODEL --threads 1,2` (or `edgevit bench`).

Needs only the TFLite runtime, numpy and psutil, so it can be copied to a real device. It mirrors
TFLite's benchmark_model: init time, first inference, warm-up mean, then N timed runs (at least
--runs and at least --min-seconds) with min/mean/std/p50/p90/p95/p99/max, the memory footprint after
init and the process's overall peak. Each thread count runs in a fresh process, so memory numbers
are those of a process that only loads and runs this model.

MODEL is an export folder / model.json (input from the sidecar; --input samples uses the sample pack)
or a bare .tflite (random input matching its input tensor).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from device_sim.report import write_json

__all__ = ["add_arguments", "run", "bench_once", "main"]


def _parse_threads(text: str) -> list[int]:
    try:
        threads = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        from device_sim.errors import SimError

        raise SimError(f"--threads takes whole numbers >= 1 separated by commas (e.g. 1,2), got {text!r}")
    return threads


def _runner(model: str, threads: int, input_kind: str, samples: str | None, seed: int):
    """-> (invoke(x), inputs, init_seconds, description)."""
    from device_sim.errors import SimError
    from device_sim.model import sidecar_candidate
    from device_sim.runtime import Interpreter

    path = Path(model)
    sidecar = sidecar_candidate(path)
    rng = np.random.default_rng(seed)
    if sidecar.is_file():
        from device_sim.model import DeployedModel

        m = DeployedModel.load(sidecar, threads=threads)
        if input_kind == "samples":
            pack = Path(samples) if samples else sidecar.parent.parent / "samples.npz"
            if not pack.is_file():
                raise SimError(f"sample pack {pack} not found; use --input random or --samples PATH")
            images = np.load(pack)["images"][:64]
            inputs = [m.to_input(im[None]) for im in images]
        else:
            inputs = [m.to_input(rng.integers(0, 256, (1, m.height, m.width, 3), dtype=np.uint8)) for _ in range(8)]
        return m.invoke, inputs, m.init_seconds, {"name": m.sidecar.get("name"), "format": m.sidecar.get("format"),
                                                  "file": str(m.tflite), "size_mb": m.size_mb}
    if path.suffix != ".tflite" or not path.is_file():
        raise SimError(f"{model} is neither an export folder with model.json nor a .tflite file")
    if input_kind == "samples":
        raise SimError("--input samples needs a model.json beside the .tflite")
    t0 = time.perf_counter()
    try:
        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise SimError(f"the runtime cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    init = time.perf_counter() - t0
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    dtype = np.dtype(inp["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        inputs = [rng.integers(info.min, info.max + 1, inp["shape"], dtype=dtype) for _ in range(8)]
    else:
        inputs = [rng.uniform(0, 255, inp["shape"]).astype(dtype) for _ in range(8)]

    def invoke(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    return invoke, inputs, init, {"name": path.stem, "format": "tflite", "file": str(path),
                                  "size_mb": path.stat().st_size / 1e6}


def bench_once(model: str, *, threads: int, runs: int = 100, min_seconds: float = 2.0, warmup_runs: int = 10,
               input_kind: str = "random", samples: str | None = None, seed: int = 0,
               run_delay_ms: float = 0.0) -> dict:
    """One configuration in THIS process (the CLI runs each in a fresh process)."""
    import device_sim.model  # noqa: F401 - import OpenCV & co. before the baseline, not inside the footprint
    from device_sim.loop import sleep_until
    from device_sim.memory import peak_rss_mb, rss_mb
    from device_sim.stats import summarize

    rss_before = rss_mb()
    invoke, inputs, init_s, desc = _runner(model, threads, input_kind, samples, seed)
    rss_init = rss_mb()
    t0 = time.perf_counter()
    invoke(inputs[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    warm = []
    for i in range(warmup_runs):
        t = time.perf_counter()
        invoke(inputs[i % len(inputs)])
        warm.append((time.perf_counter() - t) * 1e3)
    times, start = [], time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        x = inputs[len(times) % len(inputs)]
        t = time.perf_counter()
        invoke(x)
        times.append((time.perf_counter() - t) * 1e3)
        if run_delay_ms:   # like benchmark_model's --run_delay: idle time as between camera frames
            sleep_until(t + run_delay_ms / 1e3)
    from device_sim.runtime import runtime_version

    return {
        "model": desc, "threads": threads, "input": input_kind, "run_delay_ms": run_delay_ms,
        "runtime": runtime_version(),
        "init_ms": init_s * 1e3, "first_inference_ms": first_ms,
        "warmup": {"runs": warmup_runs, "mean_ms": float(np.mean(warm)) if warm else None},
        "latency_ms": summarize(times),
        "memory_mb": {"before_load": rss_before, "after_init": rss_init, "init_footprint": rss_init - rss_before,
                      "overall_peak": peak_rss_mb()},
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="export folder (with model.json), a model.json, or a bare .tflite")
    p.add_argument("--threads", default="1,2", help="thread counts to run, e.g. 1,2 (default 1,2)")
    p.add_argument("--runs", type=int, default=100, help="minimum timed runs (default 100)")
    p.add_argument("--min-seconds", type=float, default=2.0, help="minimum timed seconds (default 2)")
    p.add_argument("--warmup-runs", type=int, default=10, help="untimed runs before timing (default 10)")
    p.add_argument("--input", choices=("random", "samples"), default="random", help="random (default) or samples")
    p.add_argument("--run-delay-ms", type=float, default=0.0,
                   help="idle ms from one run's start to the next (e.g. 33 for a 30 fps camera); default 0")
    p.add_argument("--samples", default=None, help="sample pack path (default: beside the model folder)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--in-process", action="store_true", help="run every configuration in this process")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def _table(results: list[dict]) -> str:
    head = (f"{'model':<22} {'thr':>3} {'init ms':>8} {'first ms':>8} {'warm ms':>8} {'min':>7} {'p50':>7} "
            f"{'p90':>7} {'p99':>7} {'max':>7} {'runs':>5} {'init MB':>8} {'peak MB':>8}")
    rows = [head, "-" * len(head)]
    for r in results:
        lat, mem = r["latency_ms"], r["memory_mb"]
        name = f"{r['model']['name']}[{r['model']['format']}]"[:22]
        rows.append(f"{name:<22} {r['threads']:>3} {r['init_ms']:>8.1f} {r['first_inference_ms']:>8.2f} "
                    f"{r['warmup']['mean_ms'] or 0:>8.2f} {lat['min']:>7.3f} {lat['p50']:>7.3f} {lat['p90']:>7.3f} "
                    f"{lat['p99']:>7.3f} {lat['max']:>7.3f} {lat['count']:>5} {mem['init_footprint']:>8.1f} "
                    f"{mem['overall_peak']:>8.1f}")
    return "\n".join(rows + ["(host latency, ms; memory: resident MB of the benchmark process)"])


def run(args: argparse.Namespace) -> int:
    from device_sim.errors import SimError

    threads = _parse_threads(args.threads)
    if args.runs < 1 or args.min_seconds < 0 or args.warmup_runs < 0 or args.run_delay_ms < 0:
        raise SimError("--runs must be >= 1; --min-seconds, --warmup-runs and --run-delay-ms >= 0")
    opts = dict(runs=args.runs, min_seconds=args.min_seconds, warmup_runs=args.warmup_runs, input_kind=args.input,
                samples=args.samples, seed=args.seed, run_delay_ms=args.run_delay_ms)
    if args.worker or args.in_process:
        results = [bench_once(args.model, threads=t, **opts) for t in threads]
    else:
        _runner(args.model, 1, args.input, args.samples, args.seed)  # fail here, once, on a bad model
        results = [_in_fresh_process(args, t) for t in threads]
    if args.worker:
        print(json.dumps(results))
        return 0
    print(_table(results))
    if args.json:
        path = Path(args.json)
        write_json(path, {"results": results})
        print(f"wrote {path}")
    return 0


def _in_fresh_process(args: argparse.Namespace, threads: int) -> dict:
    cmd = [sys.executable, "-m", "device_sim.bench", args.model, "--worker", "--threads", str(threads),
           "--runs", str(args.runs), "--min-seconds", str(args.min_seconds), "--warmup-runs", str(args.warmup_runs),
           "--input", args.input, "--seed", str(args.seed), "--run-delay-ms", str(args.run_delay_ms)]
    cmd += ["--samples", args.samples] if args.samples else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        from device_sim.errors import SimError

        raise SimError(f"benchmark worker failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])[0]


def main(argv: list[str] | None = None) -> int:
    from device_sim.errors import module_main

    return module_main(sys.modules[__name__], argv, prog="device_sim.bench")


if __name__ == "__main__":
    sys.exit(main())
