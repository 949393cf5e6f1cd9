"""Self-contained checkpoints: weights plus everything needed to rebuild and deploy the model.

Saved atomically (temp file, then rename) and loaded with `torch.load(weights_only=True)`, so a
checkpoint can never execute code; a corrupt, foreign or hand-edited file gives a one-line UserError.
"""

from __future__ import annotations

import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contract.errors import UserError
from contract.files import atomic_write

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "atomic_torch_save", "versions"]

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
        model = create_model(spec.pop("name"), **spec)
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


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, then rename: never a half-written file."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(path: str | Path, model: nn.Module, *, img_size: int, mean, std, class_names,
                    dataset: dict | None = None, train_config: dict | None = None,
                    metrics: dict | None = None, train_state: dict | None = None) -> None:
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
    }, path)


def _reason(e: Exception) -> str:
    """A short, whole-sentence reason for a checkpoint torch.load refused."""
    text = " ".join(str(e).split())
    if "Unsupported global" in text:
        name = text.split("Unsupported global:", 1)[1].split(" was not an allowed")[0].strip(" .")
        return f"it holds Python objects that safe loading refuses ({name[:80]})"
    if any(k in text for k in ("central directory", "zip archive", "EOF", "end of file", "truncated")) \
            or isinstance(e, EOFError):
        return "the file is truncated or is not a PyTorch zip archive"
    return f"{type(e).__name__}: {text[:120].rsplit(' ', 1)[0] if len(text) > 120 else text or 'unreadable'}"


def load_checkpoint(path: str | Path) -> Checkpoint:
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
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {raw['format_version']}; "
                        f"this edgevit reads up to {FORMAT_VERSION}: upgrade edgevit")
    try:
        return Checkpoint(
            model_spec=dict(raw["model_spec"]), state_dict=raw["state_dict"], img_size=int(raw["img_size"]),
            mean=tuple(raw["mean"]), std=tuple(raw["std"]), class_names=tuple(raw["class_names"]),
            dataset=raw.get("dataset", {}), train_config=raw.get("train_config", {}),
            metrics=raw.get("metrics", {}), versions=raw.get("versions", {}),
            train_state=raw.get("train_state", {}), path=str(path),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"checkpoint {path} is missing field {e}; it was not written by edgevit train") from None
