"""Checkpoints: self-contained round trip, weights_only loading, clear errors for bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from helpers_models import randomize_norms

import edgevit
from edgevit.checkpoint import load_checkpoint, save_checkpoint


def _save(path, model):
    save_checkpoint(path, model, img_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                    class_names=[str(i) for i in range(10)], dataset={"name": "digits", "split_seed": 0},
                    train_config={"epochs": 1}, metrics={"test_acc": 0.5})


def test_round_trip_rebuilds_identical_model(tmp_path):
    model = randomize_norms(edgevit.create_model("edgevit_xxs", num_classes=10, img_size=64, act="gelu"))
    _save(tmp_path / "m.pt", model)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.model_spec == {"name": "edgevit_xxs", "num_classes": 10, "img_size": 64, "act": "gelu"}
    assert ckpt.class_names == tuple(str(i) for i in range(10)) and ckpt.mean == (0.5, 0.5, 0.5)
    assert set(ckpt.versions) >= {"torch", "edgevit", "python"}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), ckpt.build_model()(x))
    assert not list(Path(tmp_path).glob(".*tmp")), "temp file left behind"


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(bad)
    model = edgevit.create_model("edgevit_xxs", num_classes=10, img_size=64)
    good = tmp_path / "good.pt"
    _save(good, model)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(truncated)


def test_foreign_state_dict_is_rejected(tmp_path):
    p = tmp_path / "plain.pt"
    torch.save(edgevit.create_model("edgevit_xxs", num_classes=10, img_size=64).state_dict(), p)
    with pytest.raises(ValueError, match="not an edgevit checkpoint"):
        load_checkpoint(p)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/edgevit-ckpt-pwned"),))


def test_pickle_payload_is_never_executed(tmp_path):
    marker = Path("/tmp/edgevit-ckpt-pwned")
    marker.unlink(missing_ok=True)
    p = tmp_path / "evil.pt"
    torch.save({"format": "edgevit-checkpoint", "payload": _Evil()}, p, pickle_module=pickle)
    with pytest.raises(ValueError, match="not a safe PyTorch checkpoint"):
        load_checkpoint(p)
    assert not marker.exists()
