"""Input sizes the model family accepts (torch-free, so data loading can check them without torch)."""

from __future__ import annotations

from contract.errors import UserError

__all__ = ["check_img_size", "MIN_IMG_SIZE", "SIZE_MULTIPLE", "MAX_IMG_SIZE"]

MIN_IMG_SIZE = 64       # four stride-2 stages below the stem still leave a 2x2 map
SIZE_MULTIPLE = 32      # total stride of the family
MAX_IMG_SIZE = 1024     # beyond this a CPU run (MAC count, training) exhausts memory rather than failing clearly


def check_img_size(img_size: int) -> int:
    if isinstance(img_size, bool) or not isinstance(img_size, int) or not MIN_IMG_SIZE <= img_size <= MAX_IMG_SIZE \
            or img_size % SIZE_MULTIPLE:
        raise UserError(f"img size must be a multiple of {SIZE_MULTIPLE} between {MIN_IMG_SIZE} and {MAX_IMG_SIZE}, "
                        f"got {img_size!r} (try 64, 96, 224)")
    return img_size
