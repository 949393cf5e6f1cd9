"""Training: a tiny real run end to end, the recipe's options, and the CLI's bad-input contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_user_error, run_cli

from edgevit.checkpoint import load_checkpoint
from edgevit.train import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, digits64):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(out=str(out), model="edgevit_xxs", epochs=2, progress=False,
                      baseline="mobilenetv3_small_100")   # the cheapest baseline: the recipe is the same for all
    return out, train(cfg, digits64)


def test_run_writes_checkpoints_logs_and_metrics(tiny_run, digits64):
    out, result = tiny_run
    for f in ("best.pt", "last.pt", "metrics.json", "log.csv", "baseline/best.pt", "baseline/metrics.json"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["name"] == "edgevit_xxs" and metrics["baseline"]["name"] == "mobilenetv3_small_100"
    assert len((out / "log.csv").read_text().strip().splitlines()) == 1 + 2
    # the reported test accuracy is what the saved best checkpoint really scores
    ckpt = load_checkpoint(out / "best.pt")
    acc = evaluate(ckpt.build_model(), digits64.test_x, digits64.test_y, ckpt.mean, ckpt.std)["acc"]
    assert acc == pytest.approx(metrics["model"]["test_acc"])
    assert acc > 0.3, "two epochs must beat chance (10%) by far"
    assert ckpt.dataset["split_seed"] == 0 and ckpt.train_config["epochs"] == 2
    assert ckpt.metrics["test_acc"] == pytest.approx(acc)


def _fewer(splits, n: int = 512):
    """The same data set with its first n training and n/4 val/test images: a run of a few steps."""
    import dataclasses

    m = n // 4
    return dataclasses.replace(splits, train_x=splits.train_x[:n], train_y=splits.train_y[:n], val_x=splits.val_x[:m],
                               val_y=splits.val_y[:m], test_x=splits.test_x[:m], test_y=splits.test_y[:m])


def test_training_is_deterministic(tmp_path, digits64):
    runs = []
    for i in range(2):
        cfg = TrainConfig(out=str(tmp_path / str(i)), model="edgevit_xxs", epochs=1, progress=False)
        runs.append(train(cfg, _fewer(digits64))["model"]["ddp"]["weight_checksums"][0])
    assert runs[0] == runs[1]


def test_ema_and_distillation_run(tmp_path, tiny_run, digits64):
    out, _ = tiny_run
    cfg = TrainConfig(out=str(tmp_path / "kd"), model="edgevit_xxs", epochs=1, progress=False,
                      ema_decay=0.9, teacher=str(out / "best.pt"), distill_alpha=0.7)
    m = train(cfg, _fewer(digits64))["model"]
    assert np.isfinite(m["test_loss"]) and m["test_acc"] > 0.1
    saved = load_checkpoint(tmp_path / "kd" / "best.pt").train_config
    assert saved["ema_decay"] == 0.9 and saved["teacher"] == str(out / "best.pt")


def test_teacher_must_match(tmp_path, tiny_run, digits64):
    out, _ = tiny_run
    from edgevit.data import load_dataset

    cfg = TrainConfig(out=str(tmp_path / "kd"), model="edgevit_xxs", img_size=96, epochs=1, progress=False,
                      teacher=str(out / "best.pt"))
    with pytest.raises(ValueError, match="teacher"):
        train(cfg, load_dataset("digits", 96))


@pytest.mark.parametrize("args,fragment", [
    (["--model", "edgevit_xl"], "valid models: edgevit_s"),
    (["--data", "/no/such/folder"], "does not exist"),
    (["--img-size", "100"], "multiple of 32"),
    (["--epochs", "0"], "--epochs"),
    (["--act", "swish"], "unknown activation"),
    (["--teacher", "/no/teacher.pt"], "teacher"),
])
def test_cli_bad_input(tmp_path, args, fragment):
    out = tmp_path / "run"
    proc = run_cli("train", "--out", str(out), "--no-progress", *args)
    assert_user_error(proc, fragment)
    assert not list(tmp_path.rglob("*.pt")), "no checkpoint may be left behind"


def test_cli_empty_class_folder(tmp_path):
    import cv2

    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
    for i in range(12):
        cv2.imwrite(str(tmp_path / "data" / "a" / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    proc = run_cli("train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--no-progress")
    assert_user_error(proc, "b", "no images")
    assert not list(tmp_path.rglob("*.pt"))


def test_cli_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("train", "--out", str(blocker / "run"), "--no-progress")
    assert_user_error(proc, "output folder")


def test_cli_trains_and_reports(tmp_path):
    proc = run_cli("train", "--model", "edgevit_xxs", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "test acc" in proc.stdout and (tmp_path / "r" / "best.pt").is_file()


@pytest.mark.slow
def test_default_recipe_reaches_97_percent(tmp_path):
    """Acceptance of `make train`: edgevit_xs on digits at 64x64 >= 97% test accuracy, and the
    MobileNetV2 baseline trained with the identical recipe reports its accuracy too."""
    proc = run_cli("train", "--model", "edgevit_xs", "--baseline", "mobilenetv2_100", "--out", str(tmp_path / "r"),
                   "--no-progress", timeout=900)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["model"]["test_acc"] >= 0.97
    assert 0 < m["baseline"]["test_acc"] <= 1


@pytest.mark.slow
def test_train_on_glyphs_from_the_cli(tmp_path):
    """`edgevit train --data glyphs` (no download): 62 classes, learns something in one epoch."""
    out = tmp_path / "g"
    proc = run_cli("train", "--model", "edgevit_xxs", "--data", "glyphs", "--epochs", "1", "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(out / "best.pt")
    assert len(ckpt.class_names) == 62 and ckpt.dataset["name"] == "glyphs"
    assert ckpt.train_config["data"] == "glyphs"
    assert json.loads((out / "metrics.json").read_text())["model"]["test_acc"] > 1 / 62
