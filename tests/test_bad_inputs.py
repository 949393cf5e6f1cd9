"""A hostile user's matrix: every row is a mistake a user can make on the command line. Each must end
with its exit code and ONE line on stderr naming the problem (no traceback), and must leave every
file that existed before byte-identical."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli

from contract.errors import EXIT_USAGE

USER = 2   # EXIT_USAGE


def _snapshot(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ws(tiny_run, tiny_export, tmp_path_factory):
    """A workspace: a copy of a finished run and of its export, a folder holding a user's notes, an empty
    image folder, a truncated and a foreign checkpoint, a mismatched checkpoint, bad model cards."""
    root = tmp_path_factory.mktemp("ws")
    shutil.copytree(tiny_run, root / "run")
    shutil.copytree(tiny_export, root / "art")
    (root / "user").mkdir()
    (root / "user" / "notes.txt").write_text("my notes\n")
    (root / "empty_images").mkdir()
    data = (root / "run" / "best.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 3])
    (root / "text.pt").write_text("not a checkpoint\n")
    raw = torch.load(root / "run" / "best.pt", map_location="cpu", weights_only=True)
    raw["model_spec"]["num_classes"] = 7           # the weights hold 10 classes: shapes do not fit
    torch.save(raw, root / "mismatch.pt")
    (root / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    few = root / "few_labels"
    shutil.copytree(root / "art" / "int8", few / "int8")
    card = json.loads((few / "int8" / "model.json").read_text())
    card["labels"] = card["labels"][:3]
    (few / "int8" / "model.json").write_text(json.dumps(card))
    shutil.copy(root / "art" / "samples.npz", few / "samples.npz")
    foreign = dict(np.load(root / "art" / "samples.npz"))
    foreign["class_names"] = np.array([f"c{i}" for i in range(10)])
    np.savez(root / "foreign_samples.npz", **foreign)
    (root / "inf.toml").write_text('name = "x"\n[camera]\nwidth = 160\nheight = 120\nfps = 30\n'
                    '[device]\ncore = "host"\nthreads = 1\n'
                                   "[budgets]\nlatency_ms = inf\nmemory_mb = 100\nmodel_size_mb = 10\n")
    (root / "bench_dir").mkdir()
    # issue 20's data-loss cases: a user's file inside an export's subfolder, a user's own report.json, a
    # folder that never held a run (with a metrics.json and a baseline/README.txt of the user's), a run
    # whose baseline/ is a symlink to a user's folder
    (root / "art" / "fp32" / "notes.txt").write_text("why fp32\n")
    (root / "user_sim").mkdir()
    (root / "user_sim" / "report.json").write_text('{"mine": true}\n')
    (root / "user_run" / "baseline").mkdir(parents=True)
    (root / "user_run" / "metrics.json").write_text('{"accuracy": 0.99}\n')
    (root / "user_run" / "baseline" / "README.txt").write_text("my baseline notes\n")
    shutil.copytree(tiny_run, root / "linked_run")
    (root / "linked_run" / "baseline").symlink_to(root / "user", target_is_directory=True)
    return root


INT8 = "{ws}/art/int8"
CKPT = "{ws}/run/best.pt"
SIM = ["simulate", "--model", INT8, "--frames", "5", "--max-speed", "--no-video", "--out", "{ws}/sim_out"]
BENCH = ["bench", INT8, "--threads", "1", "--runs", "5", "--min-seconds", "0"]

CASES = [
    # train: options
    ("train-lr-inf", ["train", "--lr", "inf", "--out", "{ws}/t"], USER, "--lr"),
    ("train-lr-nan", ["train", "--lr", "nan", "--out", "{ws}/t"], USER, "--lr"),
    ("train-lr-negative", ["train", "--lr", "-1", "--out", "{ws}/t"], USER, "--lr"),
    ("train-warmup-nan", ["train", "--warmup-epochs", "nan", "--out", "{ws}/t"], USER, "--warmup-epochs"),
    ("train-split-seed-negative", ["train", "--split-seed", "-1", "--out", "{ws}/t"], USER, "--split-seed"),
    ("train-seed-negative", ["train", "--seed", "-3", "--out", "{ws}/t"], USER, "--seed"),
    ("train-epochs-zero", ["train", "--epochs", "0", "--out", "{ws}/t"], USER, "--epochs"),
    ("train-batch-one", ["train", "--batch-size", "1", "--out", "{ws}/t"], USER, "--batch-size"),
    ("train-weight-decay-inf", ["train", "--weight-decay", "inf", "--out", "{ws}/t"], USER, "--weight-decay"),
    ("train-label-smoothing-nan", ["train", "--label-smoothing", "nan", "--out", "{ws}/t"], USER, "--label-smoothing"),
    ("train-ema-decay-one", ["train", "--ema-decay", "1.5", "--out", "{ws}/t"], USER, "--ema-decay"),
    ("train-distill-temp-zero", ["train", "--distill-temp", "0", "--out", "{ws}/t"], USER, "--distill-temp"),
    ("train-unknown-model", ["train", "--model", "resnet9000", "--out", "{ws}/t"], USER, "unknown model"),
    ("train-huge-img", ["train", "--img-size", "4096", "--out", "{ws}/t"], USER, "img size"),
    ("train-missing-data", ["train", "--data", "{ws}/no_such_data", "--out", "{ws}/t"], USER, "does not exist"),
    ("train-missing-teacher", ["train", "--teacher", "{ws}/none.pt", "--out", "{ws}/t"], USER, "teacher"),
    ("train-unknown-act", ["train", "--act", "swish", "--out", "{ws}/t"], USER, "activation"),
    ("train-into-a-run", ["train", "--model", "edgevit_xxs", "--out", "{ws}/run"], USER, "--resume"),
    ("train-into-user-folder", ["train", "--out", "{ws}/user"], USER, "--force"),
    ("train-resume-nothing", ["train", "--resume", "--out", "{ws}/user"], USER, "nothing to resume"),
    ("train-resume-other-options", ["train", "--resume", "--epochs", "99", "--out", "{ws}/run"], USER, "--epochs"),
    ("train-resume-and-force", ["train", "--resume", "--force", "--out", "{ws}/run"], USER, "contradict"),
    ("train-unwritable", ["train", "--out", "/proc/edgevit-run"], USER, "cannot write"),
    # export
    ("export-missing-ckpt", ["export", "{ws}/none.pt", "--out", "{ws}/e"], USER, "does not exist"),
    ("export-truncated-ckpt", ["export", "{ws}/truncated.pt", "--out", "{ws}/e"], USER, "truncated"),
    ("export-text-ckpt", ["export", "{ws}/text.pt", "--out", "{ws}/e"], USER, "not a pytorch zip"),
    ("export-mismatched-weights", ["export", "{ws}/mismatch.pt", "--out", "{ws}/e"], USER, "size mismatch"),
    ("export-into-run-folder", ["export", CKPT, "--out", "{ws}/run"], USER, "best.pt"),
    ("export-into-user-folder", ["export", CKPT, "--out", "{ws}/user"], USER, "notes.txt"),
    ("export-out-is-a-file", ["export", CKPT, "--out", "{ws}/user/notes.txt"], USER, "not a folder"),
    ("export-unknown-format", ["export", CKPT, "--formats", "fp32,tensorrt", "--out", "{ws}/e"], USER, "tensorrt"),
    ("export-calib-zero", ["export", CKPT, "--calib-samples", "0", "--out", "{ws}/e"], USER, "--calib-samples"),
    ("export-calib-too-many", ["export", CKPT, "--calib-samples", "99999", "--out", "{ws}/e"], USER, "exceeds"),
    ("export-threads-negative", ["export", CKPT, "--threads", "-1", "--out", "{ws}/e"], USER, "--threads"),
    ("export-unwritable", ["export", CKPT, "--out", "/proc/edgevit-art"], USER, "cannot write"),
    # simulate
    ("sim-onnx-as-model", ["simulate", "--model", "{ws}/model.onnx", "--out", "{ws}/s"], USER, "not an export folder"),
    ("sim-missing-model", ["simulate", "--model", "{ws}/nothing", "--out", "{ws}/s"], USER, "model.json not found"),
    ("sim-duration-nan", [*SIM, "--duration", "nan"], USER, "--duration"),
    ("sim-duration-inf", [*SIM, "--duration", "inf"], USER, "--duration"),
    ("sim-duration-negative", [*SIM, "--duration", "-2"], USER, "--duration"),
    ("sim-frames-zero", [*SIM[:3], "--frames", "0", "--out", "{ws}/s"], USER, "--frames"),
    ("sim-threads-zero", [*SIM, "--threads", "0"], USER, "--threads"),
    ("sim-clock-nan", [*SIM, "--clock-ghz", "nan"], USER, "--clock-ghz"),
    ("sim-core-unknown", [*SIM, "--core", "cortex-m4"], USER, "--core must be one of"),
    ("sim-queue-zero", [*SIM, "--queue-size", "0"], USER, "--queue-size"),
    ("sim-unknown-profile", [*SIM, "--profile", "hololens"], USER, "unknown profile"),
    ("sim-profile-inf", [*SIM, "--profile", "{ws}/inf.toml"], USER, "latency_ms"),
    ("sim-camera-missing", [*SIM, "--source", "camera:57"], USER, "camera index 57"),
    ("sim-video-missing", [*SIM, "--source", "video:{ws}/none.mp4"], USER, "does not exist"),
    ("sim-empty-folder", [*SIM, "--source", "folder:{ws}/empty_images"], USER, "holds no images"),
    ("sim-unwritable", [*SIM[:-1], "/proc/edgevit-sim"], USER, "cannot write"),
    ("sim-into-user-folder", [*SIM[:-1], "{ws}/user"], USER, "notes.txt"),
    ("sim-into-export-folder", [*SIM[:-1], "{ws}/art"], USER, "--force"),
    ("sim-fewer-labels-than-outputs", ["simulate", "--model", "{ws}/few_labels/int8", "--frames", "5", "--out",
                                       "{ws}/s"], USER, "labels"),
    ("sim-foreign-sample-pack", [*SIM, "--samples", "{ws}/foreign_samples.npz"], USER, "sample pack"),
    ("sim-bad-max-bad-frames", [*SIM, "--max-bad-frames", "-1"], USER, "--max-bad-frames"),
    # bench
    ("bench-threads-zero", [*BENCH[:2], "--threads", "0"], USER, "--threads"),
    ("bench-min-seconds-inf", [*BENCH, "--min-seconds", "inf"], USER, "--min-seconds"),
    ("bench-runs-zero", [*BENCH, "--runs", "0"], USER, "--runs"),
    ("bench-delay-nan", [*BENCH, "--run-delay-ms", "nan"], USER, "--run-delay-ms"),
    ("bench-json-is-a-folder", [*BENCH, "--json", "{ws}/bench_dir"], USER, "is a folder"),
    ("bench-json-unwritable", [*BENCH, "--json", "/proc/edgevit/b.json"], USER, "cannot write"),
    ("bench-missing-model", ["bench", "{ws}/none.tflite"], USER, "neither"),
    # issue 20, data loss 1: a user's file in a subfolder of an earlier export
    ("export-user-file-in-subfolder", ["export", CKPT, "--out", "{ws}/art"], USER, "fp32/notes.txt"),
    # 2: --json over a file bench did not write, over its own input (even with --force); target: same code
    ("bench-json-over-a-checkpoint", [*BENCH, "--json", "{ws}/run/best.pt"], USER, "--force"),
    ("bench-json-over-its-model", ["bench", "{ws}/art/int8/model.tflite", *BENCH[2:], "--json",
                                   "{ws}/art/int8/model.tflite", "--force"], USER, "input of this command"),
    ("bench-json-into-its-model-folder", [*BENCH, "--json", "{ws}/art/int8/model.json", "--force"], USER,
     "input of this command"),
    ("target-json-over-a-checkpoint", ["target", INT8, "--json", "{ws}/run/best.pt"], USER, "--force"),
    # 3: --force replaces earlier outputs only, never a user's file where an output goes
    ("sim-force-over-users-report", [*SIM[:-1], "{ws}/user_sim", "--force"], USER, "report.json"),
    ("train-force-into-users-folder", ["train", "--force", "--model", "edgevit_xxs", "--epochs", "1", "--out",
                                       "{ws}/user_run"], USER, "metrics.json"),
    # 4: train --force whose new run diverges leaves the earlier run as it was; a symlinked baseline/ is kept
    ("train-force-diverging", ["train", "--force", "--model", "edgevit_xxs", "--epochs", "1", "--lr", "1e30",
                               "--warmup-epochs", "0", "--no-progress", "--out", "{ws}/run"], USER, "diverged"),
    ("train-force-baseline-symlink", ["train", "--force", "--model", "edgevit_xxs", "--baseline", "mobilenetv2_100",
                                      "--epochs", "1", "--out", "{ws}/linked_run"], USER, "baseline"),
    # info
    ("info-huge-img", ["info", "--img-size", "4096"], USER, "img size"),
    ("info-odd-img", ["info", "--img-size", "63"], USER, "img size"),
]


@pytest.mark.parametrize("name,args,code,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ws, name, args, code, fragment):
    before = _snapshot(ws)
    proc = run_cli(*[a.replace("{ws}", str(ws)) for a in args], timeout=300)
    assert proc.returncode == code, f"{name}: exit {proc.returncode}\n{proc.stdout[-800:]}\n{proc.stderr[-1500:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"{name}: expected one error line, got:\n{proc.stderr}"
    assert fragment.lower() in lines[0].lower(), f"{name}: {fragment!r} not in {lines[0]!r}"
    after = _snapshot(ws)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{name}: changed or removed {changed}"


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 40 and EXIT_USAGE == USER
