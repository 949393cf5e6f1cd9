"""glyphs: 62-class character recognition (0-9, A-Z, a-z) as a wearable camera sees signs and labels.
Embedded and deterministic: nothing is downloaded.

Each image is one character rendered with Pillow from a font that ships inside an installed wheel
(matplotlib's DejaVu Sans / Sans Mono / Serif and STIX General in four styles each, and six Computer
Modern faces: 22 fonts), placed on a crop of a real photograph that a package ships (scikit-learn's
china.jpg and flower.jpg, matplotlib's grace_hopper.jpg), sometimes on a sign plate, then put through
camera effects: perspective and rotation, scale, blur, sensor noise, exposure and colour, JPEG.

The characters keep their size relative to the font's em square (a lowercase o is smaller than an O),
but the size varies +-15% and some pairs stay ambiguous (o/O/0, l/I/1, s/S, ...): a task that does
not saturate, as a real sign reader's does not.

Split BY FONT with a fixed seed: the test fonts are never seen in training (`GLYPH_SPLIT` lists them).
Counts per split: fonts x 62 characters x samples per (font, character): train 14 x 62 x 8 = 6944,
val 3 x 62 x 4 = 744, test 5 x 62 x 4 = 1240. Every sample has its own seeded generator, so the same
seed gives the same images whatever order they are made in.
"""

from __future__ import annotations

import string
from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from edgevit.data.splits import ImageSplits, channel_stats

__all__ = ["load_glyph_splits", "glyph_fonts", "font_split", "plan", "CLASSES", "PER_FONT"]

CLASSES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)
FONT_FILES = (   # matplotlib/mpl-data/fonts/ttf: every face with all 62 characters as letters and digits
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmmi10.ttf")
SPLIT_FONTS = {"val": 3, "test": 5}                  # the rest train
PER_FONT = {"train": 8, "val": 4, "test": 4}         # samples per (font, character)
FONT_SEED = 1234                                     # which fonts go where: fixed, whatever the split seed
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


def glyph_fonts() -> list[Path]:
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    missing = [f for f in FONT_FILES if not (root / f).is_file()]
    if missing:
        raise UserError(f"matplotlib's fonts {missing} are missing from {root}; reinstall matplotlib")
    return [root / f for f in FONT_FILES]


def font_split() -> dict[str, list[str]]:
    """Font file names per split (disjoint; fixed by FONT_SEED)."""
    order = np.random.default_rng(FONT_SEED).permutation(len(FONT_FILES))
    names = [FONT_FILES[i] for i in order]
    n_val, n_test = SPLIT_FONTS["val"], SPLIT_FONTS["test"]
    return {"test": sorted(names[:n_test]), "val": sorted(names[n_test:n_test + n_val]),
            "train": sorted(names[n_test + n_val:])}


def _photos() -> list[np.ndarray]:
    """RGB photographs that installed packages ship."""
    import matplotlib
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(img) for img in load_sample_images().images]
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"), cv2.IMREAD_COLOR)
    if hopper is not None:
        photos.append(cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB))
    return photos


def _background(rng, photos, size: int) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.15, 0.6) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return cv2.resize(photo[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def _glyph_mask(font, char: str, size: int, rng) -> np.ndarray:
    """(size, size) float 0..1 coverage of the character, placed by the font's em box (case size kept)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ascent, descent = font.getmetrics()
    x0, _, x1, _ = font.getbbox(char)
    ox = size - (x0 + x1) / 2 + rng.uniform(-0.08, 0.08) * size
    oy = size - (ascent + descent) / 2 + rng.uniform(-0.08, 0.08) * size
    ImageDraw.Draw(canvas).text((ox, oy), char, fill=255, font=font)
    mask = np.asarray(canvas, np.float32)[size // 2: size // 2 + size, size // 2: size // 2 + size] / 255.0
    return mask


def _colours(rng, background: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(ink colour, plate colour or None): the ink contrasts with what it is printed on."""
    plate = rng.uniform(0, 255, 3) if rng.random() < 0.35 else None
    under = plate if plate is not None else background[mask > 0.3].mean(0) if (mask > 0.3).any() else \
        background.mean((0, 1))
    light = float(under @ [0.299, 0.587, 0.114])
    target = rng.uniform(0, max(light - 70, 10)) if light > 127 else rng.uniform(min(light + 70, 245), 255)
    ink = rng.uniform(0, 255, 3)
    ink = np.clip(ink + (target - float(ink @ [0.299, 0.587, 0.114])), 0, 255)
    return ink, plate


def _camera(image: np.ndarray, rng) -> np.ndarray:
    """Perspective, rotation, blur, exposure, noise, JPEG on a float RGB image -> uint8."""
    size = image.shape[0]
    src = np.float32([[0, 0], [size, 0], [size, size], [0, size]])
    dst = src + rng.uniform(-0.1, 0.1, (4, 2)).astype(np.float32) * size
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-12, 12), rng.uniform(0.9, 1.1))
    dst = (np.hstack([dst, np.ones((4, 1), np.float32)]) @ rot.T).astype(np.float32)
    image = cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (size, size),
                                borderMode=cv2.BORDER_REFLECT)
    sigma = rng.uniform(0.0, 1.3) * size / 64
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = 255.0 * (np.clip(image * rng.uniform(0.6, 1.4), 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    image = image * rng.uniform(0.85, 1.15, 3) + rng.normal(0, rng.uniform(0, 12), image.shape)
    ok, jpeg = cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY,
                                                                              int(rng.integers(25, 91))])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


def _sample(font_path: Path, font_index: int, char_index: int, k: int, part: str, size: int, seed: int, photos,
            fonts: dict) -> np.ndarray:
    from PIL import ImageFont

    rng = np.random.default_rng((seed, _SPLIT_CODE[part], font_index, char_index, k))
    em = int(round(size * 0.72 * rng.uniform(0.85, 1.15)))
    key = (font_path, em)
    if key not in fonts:
        fonts[key] = ImageFont.truetype(str(font_path), em)
    mask = _glyph_mask(fonts[key], CLASSES[char_index], size, rng)[..., None]
    background = _background(rng, photos, size)
    ink, plate = _colours(rng, background, mask[..., 0])
    if plate is not None:
        m = int(size * rng.uniform(0.02, 0.12))
        background[m:size - m, m:size - m] = plate
    return _camera(background * (1 - mask) + ink * mask, rng)


def plan(part: str) -> list[tuple[str, int, int]]:
    """(font file, class index, sample number) of every image of a split, in order."""
    return [(name, ci, k) for name in font_split()[part] for ci in range(len(CLASSES)) for k in range(PER_FONT[part])]


def _render(part: str, paths: dict, size: int, seed: int, photos) -> tuple[np.ndarray, np.ndarray]:
    fonts: dict = {}
    todo = plan(part)
    images = [_sample(paths[name], FONT_FILES.index(name), ci, k, part, size, seed, photos, fonts)
              for name, ci, k in todo]
    return np.stack(images), np.asarray([ci for _, ci, _ in todo], np.int64)


def load_glyph_splits(img_size: int, *, seed: int = 0) -> ImageSplits:
    """`seed` varies the renderings (positions, photos, effects); the font split is fixed (FONT_SEED)."""
    paths = {p.name: p for p in glyph_fonts()}
    photos = _photos()
    parts = {part: _render(part, paths, img_size, seed, photos) for part in ("train", "val", "test")}
    mean, std = channel_stats(parts["train"][0])
    return ImageSplits(name="glyphs", class_names=CLASSES, train_x=parts["train"][0], train_y=parts["train"][1],
                       val_x=parts["val"][0], val_y=parts["val"][1], test_x=parts["test"][0], test_y=parts["test"][1],
                       split_seed=seed, mean=mean, std=std)
