"""`edgevit bench MODEL`: the on-device benchmark (device_sim.bench), each thread count in a fresh process."""

from __future__ import annotations

import argparse

from edgevit_cli.main import seed

INPUTS = ("model", "samples")   # recovered before they are read (edgevit_cli.main._recover_inputs)


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
    p.add_argument("--force", action="store_true", help="let --json overwrite a file an earlier bench did not write")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--in-process", action="store_true", help="run every configuration in this process")


def run(args: argparse.Namespace) -> int:
    from contract.card import model_inputs
    from contract.files import to_json
    from contract.outputs import check_output_file, publish_file
    from device_sim.bench import BenchOptions, bench, parse_threads, table

    threads = parse_threads(args.threads)
    opts = BenchOptions(runs=args.runs, min_seconds=args.min_seconds, warmup_runs=args.warmup_runs,
                        input_kind=args.input, samples=args.samples, seed=args.seed, run_delay_ms=args.run_delay_ms)
    inputs = model_inputs(args.model, args.samples, sample_pack=args.input == "samples")
    json_out = check_output_file(args.json, kind="bench", force=args.force, inputs=inputs) if args.json else None
    results = bench(args.model, threads=threads, opts=opts, fresh_process=not args.in_process)
    print(table(results))
    if json_out:
        publish_file(json_out, to_json({"results": results}), kind="bench")
        print(f"wrote {args.json}")
    return 0
