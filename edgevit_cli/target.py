"""`edgevit target ARTIFACT --cpu cortex-a53`: run an exported model on the wearable's instruction set
(aarch64 under qemu-user; `make arm-setup` builds it): instructions per inference on the named core
and agreement of its outputs with the host's on the sample pack."""

from __future__ import annotations

import argparse
from pathlib import Path

INPUTS = ("artifact", "samples")   # recovered before they are read (edgevit_cli.main._recover_inputs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from device_sim.arm.cores import CORES

    p.add_argument("artifact", nargs="?", help="export folder with model.json (e.g. artifacts/x/int8)")
    p.add_argument("--cpu", default="cortex-a53", help=f"core to emulate: {', '.join(CORES)} (default cortex-a53)")
    p.add_argument("--samples", default=None, help="sample pack (default: beside the model folder)")
    p.add_argument("--images", type=int, default=100, help="sample images for the fidelity check (default 100)")
    p.add_argument("--invokes", type=int, default=5, help="inferences counted (default 5)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--force", action="store_true", help="let --json overwrite a file an earlier target did not write")
    p.add_argument("--arm-dir", default=None, help="the aarch64 environment (default $EDGEVIT_ARM_DIR or ./.arm)")
    p.add_argument("--check", action="store_true", help="only check that the aarch64 environment works")


def run(args: argparse.Namespace) -> int:
    from contract.card import model_inputs
    from contract.errors import UserError
    from contract.files import to_json
    from contract.outputs import check_output_file, publish_file
    from device_sim.arm.runner import check_env, find_env

    inputs = model_inputs(args.artifact, args.samples, sample_pack=True) if args.artifact else ()
    json_out = check_output_file(args.json, kind="target", force=args.force, inputs=inputs) if args.json else None
    env = find_env(args.arm_dir)
    if args.check:
        print(check_env(env))
        return 0
    if not args.artifact:
        raise UserError("give an export folder, e.g. edgevit target artifacts/edgevit_xs-digits/int8 --cpu cortex-a53")
    if args.images < 1 or args.invokes < 1:
        raise UserError("--images and --invokes must be >= 1")
    from device_sim.arm.fidelity import target_report

    rep = target_report(env, args.artifact, cpu=args.cpu, samples=Path(args.samples) if args.samples else None,
                        fidelity_images=args.images, invokes=args.invokes)
    ins, fid = rep["instructions"], rep["fidelity"]
    print(f"{rep['model']['name']} [{rep['model']['format']}] on {rep['core']['name']} "
          f"(qemu {rep['core']['qemu_cpu']}, part {rep['core']['cpu_part']}, dot product "
          f"{'yes' if rep['core']['dot_product'] else 'no'})")
    print(f"  instructions per inference   {ins['per_inference'] / 1e6:10.3f} M   (1 thread, steady state)")
    proj = rep["projection"]
    for name, r in proj["profiles"].items():
        plural = "s" if r["threads"] > 1 else ""
        print(f"  projected latency, {name:<10} {r['one_thread_ms']:10.2f} ms  (1 thread at {r['clock_ghz']:g} GHz; "
              f"{r['profile_threads_ms']:.2f} ms on the profile's {r['threads']} thread{plural})")
    print(f"  projected latency at 1 GHz   {proj['per_ghz_one_thread_ms']:10.2f} ms  (1 thread; CPI {proj['cpi']:.2f}, "
          f"projection's leave-one-out error {100 * proj['calibration_loo_median_abs_error']:.0f}%)")
    print(f"  agreement with the host      {fid['agreement']:10.4f}     on {fid['images']} sample images")
    print(f"  max abs output difference    {fid['max_abs_diff']:10.3g}     "
          f"identical outputs {fid['identical_outputs']:.2%}"
          + ("" if fid.get("max_diff_steps") is None else f", at most {fid['max_diff_steps']} output step(s) apart"))
    print(f"  {rep['versions']['runtime']}; {rep['versions']['emulator']}")
    if json_out:
        publish_file(json_out, to_json(rep), kind="target")
        print(f"wrote {args.json}")
    return 0
