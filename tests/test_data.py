"""Data sets: embedded digits split, ImageFolder, local CIFAR-10, and their errors."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from edgevit.data import load_dataset


def test_digits_split_is_fixed_stratified_and_disjoint(digits64):
    s = digits64
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (1258, 179, 360)
    assert s.train_x.dtype == np.uint8 and s.train_x.shape[1:] == (64, 64, 3)
    for part in ("train", "val", "test"):
        assert set(np.unique(s.part(part)[1])) == set(range(10))
    # disjoint: no image appears in two splits (digits has a handful of exact duplicates, so compare counts)
    flat = lambda x: {im.tobytes() for im in x}  # noqa: E731
    assert len(flat(s.test_x) & flat(s.train_x)) <= 3
    again = load_dataset("digits", 64)
    assert np.array_equal(again.test_x, s.test_x) and np.array_equal(again.train_y, s.train_y)
    other = load_dataset("digits", 64, seed=1)
    assert not np.array_equal(other.test_y, s.test_y)


def test_digits_mean_std_from_train(digits64):
    x = digits64.train_x.reshape(-1, 3) / 255.0
    assert np.allclose(digits64.mean, x.mean(0)) and np.allclose(digits64.std, x.std(0))


def _write_folder(root, classes=("cat", "dog"), n=12, size=(40, 30)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / c / f"{i}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return root


def test_image_folder(tmp_path):
    root = _write_folder(tmp_path / "data")
    s = load_dataset(str(root), 64)
    assert s.class_names == ("cat", "dog")
    assert s.train_x.shape[1:] == (64, 64, 3)
    assert len(s.train_x) + len(s.val_x) + len(s.test_x) == 24


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(str(tmp_path / "missing"), 64)
    root = _write_folder(tmp_path / "d1")
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no images"):
        load_dataset(str(root), 64)
    root = _write_folder(tmp_path / "d2")
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_dataset(str(root), 64)


def _write_cifar(root, n=20):
    rng = np.random.default_rng(0)
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return root


def test_cifar10_local(tmp_path):
    root = _write_cifar(tmp_path / "cifar")
    s = load_dataset(f"cifar10:{root}", 64)
    assert s.num_classes == 10 and len(s.test_x) == 20 and len(s.train_x) + len(s.val_x) == 100
    assert s.test_x.shape[1:] == (64, 64, 3)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/edgevit-pwned",))


def test_cifar10_refuses_code_in_pickles(tmp_path):
    root = _write_cifar(tmp_path / "cifar")
    with open(root / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(ValueError, match="data_batch_3"):
        load_dataset(f"cifar10:{root}", 64)


def test_cifar10_missing(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(f"cifar10:{tmp_path / 'nope'}", 64)


def test_glyphs_split_by_font_and_deterministic():
    """62 classes; no test (or val) font ever renders a training image; the same seed gives the same
    images, another seed other images; each split holds every class."""
    from edgevit.data import glyphs

    split = glyphs.font_split()
    train_fonts = {f for f, _, _ in glyphs.plan("train")}
    assert train_fonts == set(split["train"])
    for part in ("val", "test"):
        fonts = {f for f, _, _ in glyphs.plan(part)}
        assert fonts and not fonts & train_fonts, f"{part} fonts seen in training: {fonts & train_fonts}"
    assert not set(split["val"]) & set(split["test"])
    assert len(glyphs.CLASSES) == 62 and len(set(glyphs.CLASSES)) == 62
    paths = {p.name: p for p in glyphs.glyph_fonts()}
    photos = glyphs._photos()
    font = split["test"][0]
    one = lambda seed, k: glyphs._sample(paths[font], glyphs.FONT_FILES.index(font), 10, k, "test", 64, seed,  # noqa: E731
                                         photos, {})
    a = one(0, 0)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, one(0, 0)) and not np.array_equal(a, one(1, 0)) and not np.array_equal(a, one(0, 1))


@pytest.mark.slow
def test_glyphs_load_with_the_documented_counts():
    s = load_dataset("glyphs", 64)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (14 * 62 * 8, 3 * 62 * 4, 5 * 62 * 4)
    for part in ("train", "val", "test"):
        assert set(np.unique(s.part(part)[1])) == set(range(62))
    again = load_dataset("glyphs", 64)
    assert np.array_equal(again.test_x, s.test_x)
