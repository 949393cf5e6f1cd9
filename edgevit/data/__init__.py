"""Data sets: the embedded digits default, the embedded glyphs (62 characters on photographs, split by
font: the one that does not saturate), user ImageFolders and local CIFAR-10.

`load_dataset(spec, img_size, seed=0)` where spec is "digits", "glyphs", "cifar10:PATH" or a folder path.
"""

from __future__ import annotations

from pathlib import Path

from edgevit.data.splits import ImageSplits, stratified_split
from edgevit.sizes import check_img_size

__all__ = ["ImageSplits", "load_dataset", "stratified_split"]


def load_dataset(spec: str, img_size: int, *, seed: int = 0) -> ImageSplits:
    check_img_size(img_size)
    if spec == "digits":
        from edgevit.data.digits import load_digits_splits

        return load_digits_splits(img_size, seed=seed)
    if spec == "glyphs":
        from edgevit.data.glyphs import load_glyph_splits

        return load_glyph_splits(img_size, seed=seed)
    if spec.startswith("cifar10:"):
        from edgevit.data.cifar import load_cifar10_splits

        return load_cifar10_splits(Path(spec.split(":", 1)[1]), img_size, seed=seed)
    from edgevit.data.folder import load_folder_splits

    return load_folder_splits(Path(spec), img_size, seed=seed)
