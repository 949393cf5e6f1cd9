"""Self-contained checkpoints: weights plus everything needed to rebuild and deploy the model.

Saved atomically (temp file, then rename) and loaded with `torch.load(weights_only=True)`, so a
checkpoint can never execute code; a corrupt, foreign or hand-edited file gives a one-line UserError.
"""

from __future__ import annotations

import io
import math
import platform
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contract.errors import UserError
from contract.files import atomic_write

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "atomic_torch_save", "versions", "non_finite_weights"]

FORMAT = "edgevit-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    model_spec: dict[str, Any]          # create_model(**spec) rebuilds the architecture
    state_dict: dict[str, torch.Tensor]
    img_size: int
    mean: tuple[float, float, float]    # input normalization, 0..1 units: (x/255 - mean) / std
    std: tuple[float, float, float]
    class_names: tuple[str, ...]
    dataset: dict[str, Any] = field(default_factory=dict)    # name, split_seed, fractions
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    train_state: dict[str, Any] = field(default_factory=dict)   # last.pt: what --resume needs
    path: str = ""

    def build_model(self) -> nn.Module:
        from edgevit.registry import create_model

        spec = dict(self.model_spec)
        try:
            model = create_model(spec.pop("name"), **spec)
        except (UserError, TypeError) as e:   # a hand-edited model_spec: an unknown option, a value of the wrong type
            raise UserError(f"checkpoint {self.path or '?'}: its model_spec does not build a model ({e}); use the "
                            "checkpoint a training wrote, or train again") from None
        try:
            missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        except RuntimeError as e:   # shapes that do not fit: torch lists every tensor, one line is enough
            first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
            raise UserError(f"checkpoint {self.path or '?'} does not match its model {self.model_spec.get('name')}: "
                            f"{first.rstrip('.')}") from None
        if missing or unexpected:
            raise UserError(f"checkpoint {self.path or '?'} does not match its model "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()


def versions() -> dict[str, str]:
    import numpy

    from contract import __version__

    return {"edgevit": __version__, "torch": str(torch.__version__),
            "numpy": str(numpy.__version__), "python": platform.python_version()}


def atomic_torch_save(obj: Any, path: str | Path, *, before_replace=None) -> None:
    """torch.save to a temp file in the same folder, then rename: never a half-written file. torch serializes
    into memory and Python writes the bytes, so a full disk (or a file-size limit) is an OSError naming the
    file: torch's own zip writer reports a failed write as a RuntimeError ("unexpected pos"), like a bug."""
    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        tmp.write_bytes(buffer.getbuffer())

    atomic_write(path, write, before_replace=before_replace)


def save_checkpoint(path: str | Path, model: nn.Module, *, img_size: int, mean, std, class_names,
                    dataset: dict | None = None, train_config: dict | None = None,
                    metrics: dict | None = None, train_state: dict | None = None, before_replace=None) -> None:
    """`before_replace`: contract.files.atomic_write's hook (a run's manifest records the file first)."""
    spec = getattr(model, "model_spec", None)
    if spec is None:
        raise UserError("model has no model_spec: build it with edgevit.create_model")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_torch_save({
        "format": FORMAT, "format_version": FORMAT_VERSION, "model_spec": dict(spec), "state_dict": state,
        "img_size": int(img_size), "mean": [float(v) for v in mean], "std": [float(v) for v in std],
        "class_names": [str(c) for c in class_names], "dataset": dict(dataset or {}),
        "train_config": dict(train_config or {}), "metrics": dict(metrics or {}), "versions": versions(),
        **({"train_state": train_state} if train_state else {}),
    }, path, before_replace=before_replace)


def _reason(e: Exception) -> str:
    """A short, whole-sentence reason for a checkpoint torch.load refused."""
    text = " ".join(str(e).split())
    named = re.search(r"(?:Unsupported global:\s*|unsupported )GLOBAL\s+([\w.]+)", text) \
        or re.search(r"Unsupported global:\s*([\w.]+)", text)
    if named:   # a pickle that names a function or class: loading it could run code
        return (f"refused: the checkpoint names the global {named.group(1)}, which safe loading never runs "
                "(it could execute code); use a checkpoint written by `edgevit train`")
    if any(k in text for k in ("central directory", "zip archive", "EOF", "end of file", "truncated")) \
            or isinstance(e, EOFError):
        return "the file is truncated or is not a PyTorch zip archive"
    return f"{type(e).__name__}: {text[:120].rsplit(' ', 1)[0] if len(text) > 120 else text or 'unreadable'}"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint at `path`, its every field checked: a missing, damaged, foreign, unsafe or hand-edited
    file is a UserError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist (train one with `edgevit train` or `make train`)")
    if not zipfile.is_zipfile(path):
        raise UserError(f"checkpoint {path} is corrupt or not a PyTorch checkpoint (not a PyTorch zip archive: "
                        "the file is truncated, or another kind of file)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, or a pickle that weights_only refuses
        raise UserError(f"checkpoint {path} is corrupt or not a safe PyTorch checkpoint ({_reason(e)})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UserError(f"{path} is not an edgevit checkpoint (no '{FORMAT}' header); "
                        "export plain models through the Python API export.convert()")
    _check_fields(raw, path)
    return Checkpoint(
        model_spec=dict(raw["model_spec"]), state_dict=raw["state_dict"], img_size=raw["img_size"],
        mean=tuple(float(v) for v in raw["mean"]), std=tuple(float(v) for v in raw["std"]),
        class_names=tuple(raw["class_names"]), dataset=raw.get("dataset", {}), train_config=raw.get("train_config", {}),
        metrics=raw.get("metrics", {}), versions=raw.get("versions", {}), train_state=raw.get("train_state", {}),
        path=str(path),
    )


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(v, n: int) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)


def _check_fields(raw: dict, path: Path) -> None:
    """Every field a checkpoint needs, with its type: a hand-edited file fails here, naming the field."""
    def bad(what: str) -> UserError:
        return UserError(f"checkpoint {path}: {what}; it was edited or not written by `edgevit train`: "
                         "use the checkpoint a training wrote, or train again")

    version = raw.get("format_version", 0)
    if not _whole(version):
        raise bad(f"format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {version}; this edgevit reads up to "
                        f"{FORMAT_VERSION}: upgrade edgevit")
    for key, kind in (("model_spec", dict), ("state_dict", dict), ("class_names", list)):
        if not isinstance(raw.get(key), kind):
            raise bad(f"field '{key}' must be a {kind.__name__}" if key in raw else f"field '{key}' is missing")
    for key in ("dataset", "train_config", "metrics", "versions", "train_state"):
        if not isinstance(raw.get(key, {}), dict):
            raise bad(f"field '{key}' must be a dict, got {type(raw[key]).__name__}")
    if not isinstance(raw["model_spec"].get("name"), str):
        raise bad("model_spec.name must be a model name")
    if not (_whole(raw.get("img_size")) and raw["img_size"] > 0):
        raise bad(f"img_size must be a whole number > 0, got {raw.get('img_size')!r}")
    for key in ("mean", "std"):
        if not _numbers(raw.get(key), 3):
            raise bad(f"{key} must be 3 finite numbers (one per channel), got {raw.get(key)!r}")
    if min(raw["std"]) <= 0:
        raise bad(f"std must be > 0, got {raw['std']!r}")
    names = raw["class_names"]
    if len(names) < 2 or not all(isinstance(c, str) for c in names):
        raise bad(f"class_names must be 2 or more names (text), got {names[:5]!r}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in raw["state_dict"].items()):
        raise bad("state_dict must map parameter names to tensors")


def non_finite_weights(ckpt: Checkpoint) -> list[str]:
    """The floating-point tensors of the checkpoint that hold NaN or infinity."""
    return [k for k, v in ckpt.state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
