"""quant.data: the real digits, the CIFAR-10 pickle loader (on files written here), synthetic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from quant import data as qdata


def test_digits_shapes_split_and_normalisation() -> None:
    train, test = qdata.digits("train"), qdata.digits("test")
    assert train.images.shape == (1437, 1, 8, 8)
    assert test.images.shape == (360, 1, 8, 8)
    assert train.input_shape == (1, 8, 8)
    assert train.num_classes == 10
    assert train.images.dtype == torch.float32
    assert train.targets.dtype == torch.int64
    # Standardised with the train statistics: train mean 0, std 1; test close but not exact.
    assert abs(float(train.images.mean())) < 1e-5
    assert abs(float(train.images.std(unbiased=False)) - 1.0) < 1e-5
    assert abs(float(test.images.mean())) < 0.1
    # Stratified: every class keeps its share (load_digits has 174..183 images per class).
    counts = torch.bincount(test.targets, minlength=10)
    assert int(counts.min()) >= 34
    assert int(counts.max()) <= 37


def test_digits_are_the_real_scans_and_splits_partition_them() -> None:
    """Undo the normalisation and find every image among sklearn's 1797 scans exactly once."""
    raw = load_digits()
    x = raw.data.astype(np.float32) / 16.0
    train, test = qdata.digits("train", seed=3), qdata.digits("test", seed=3)
    flat = torch.cat([train.images, test.images]).reshape(-1, 64).numpy()
    labels = torch.cat([train.targets, test.targets]).numpy()
    # Recover the affine map from two distinct pixel values: z = (x - mean) / std.
    lo, hi = flat.min(), flat.max()
    recovered = (flat - lo) / (hi - lo)  # x has min 0 and max 1 over the whole set
    key = {tuple(np.round(row * 16).astype(int)) for row in x}
    assert {tuple(np.round(row * 16).astype(int)) for row in recovered} <= key
    # Train and test are disjoint and together hold the 1797 images with their labels.
    order = np.lexsort(np.round(recovered * 16).T[::-1])
    ref = np.lexsort(np.round(x * 16).T[::-1])
    np.testing.assert_allclose(np.round(recovered[order] * 16), np.round(x[ref] * 16))
    assert sorted(labels.tolist()) == sorted(raw.target.tolist())


def test_digits_deterministic_and_seed_dependent() -> None:
    a, b = qdata.digits("test", seed=0), qdata.digits("test", seed=0)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.targets, b.targets)
    c = qdata.digits("test", seed=1)
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize("split", ["valid", "", "TRAIN"])
def test_bad_split_names_the_field(split: str) -> None:
    with pytest.raises(ValueError, match="split"):
        qdata.digits(split)


def _write_cifar(folder: Path, name: str, data: np.ndarray, labels: list[int]) -> None:
    """The standard CIFAR-10 python format: a pickled dict with bytes keys."""
    folder.mkdir(parents=True, exist_ok=True)
    batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}
    with (folder / name).open("wb") as f:
        pickle.dump(batch, f, protocol=2)


def _fake_cifar(root: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(0)
    files = {}
    for name in [*qdata.CIFAR10_TRAIN_FILES, "test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        _write_cifar(root, name, data, labels)
        files[name] = (data, labels)
    return files


def test_cifar10_reads_the_standard_layout(tmp_path: Path) -> None:
    files = _fake_cifar(tmp_path / "cifar-10-batches-py")
    train = qdata.cifar10(tmp_path, "train")  # the parent folder works too
    test = qdata.cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert train.images.shape == (20, 3, 32, 32)
    assert test.images.shape == (4, 3, 32, 32)
    assert train.targets.tolist() == [y for n in qdata.CIFAR10_TRAIN_FILES for y in files[n][1]]
    # Pixel (c, y, x) of image i is byte c*1024 + y*32 + x of its row (R, G, B planes).
    data, _ = files["test_batch"]
    mean, std = qdata.CIFAR10_MEAN, qdata.CIFAR10_STD
    for i, c, yy, xx in [(0, 0, 0, 0), (1, 1, 5, 7), (3, 2, 31, 30)]:
        want = (data[i, c * 1024 + yy * 32 + xx] / 255.0 - mean[c]) / std[c]
        assert float(test.images[i, c, yy, xx]) == pytest.approx(want, abs=1e-5)


def test_cifar10_missing_file_error_names_it(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3") as info:
        qdata.cifar10(tmp_path, "train")
    assert "test_batch" in str(info.value)  # states the expected layout
    qdata.cifar10(tmp_path, "test")  # the test split does not need it


def test_cifar10_rejects_malformed_and_code_carrying_pickles(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    _write_cifar(tmp_path, "test_batch", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3072"):
        qdata.cifar10(tmp_path, "test")
    with (tmp_path / "test_batch").open("wb") as f:
        pickle.dump({b"data": Path("x"), b"labels": [0]}, f)  # a non-numpy class
    with pytest.raises(pickle.UnpicklingError, match="only numpy"):
        qdata.cifar10(tmp_path, "test")


def test_cifar_augmentation_is_crop_and_flip_and_seeded(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    ds = qdata.cifar10(tmp_path, "train", augment=True)
    torch.manual_seed(5)
    a = ds[0][0]
    torch.manual_seed(5)
    assert torch.equal(a, ds[0][0])
    assert a.shape == (3, 32, 32)
    # Every augmented view is a shifted (and maybe flipped) window of the zero-padded image.
    padded = torch.nn.functional.pad(ds.images[0], (4, 4, 4, 4))
    windows = [padded[:, t:t + 32, s:s + 32] for t in range(9) for s in range(9)]
    for _ in range(5):
        v = ds[0][0]
        assert any(torch.equal(v, w) or torch.equal(v, w.flip(-1)) for w in windows)


def test_synthetic_is_learnable_and_deterministic() -> None:
    train = qdata.synthetic(400, (1, 8, 8), 4, seed=2)
    test = qdata.synthetic(200, (1, 8, 8), 4, seed=2, split="test")
    assert torch.equal(train.images, qdata.synthetic(400, (1, 8, 8), 4, seed=2).images)
    assert not torch.equal(train.images[:200], test.images)
    assert torch.bincount(train.targets).tolist() == [100] * 4
    # Nearest class mean (estimated on train) classifies test well above chance (25 %).
    means = torch.stack([train.images[train.targets == k].mean(0) for k in range(4)])
    d = ((test.images[:, None] - means[None]) ** 2).flatten(2).sum(-1)
    assert float((d.argmin(1) == test.targets).float().mean()) > 0.9


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"n": 0}, "n"), ({"classes": 1}, "classes"), ({"shape": (8, 8)}, "shape"),
    ({"noise": -1.0}, "noise")])
def test_synthetic_bad_arguments(kwargs: dict, field: str) -> None:
    args = {"n": 10, "shape": (1, 8, 8), "classes": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=field):
        qdata.synthetic(**args)


def test_load_dispatch_errors() -> None:
    with pytest.raises(ValueError, match="data"):
        qdata.load("mnist", "train")
    with pytest.raises(ValueError, match="data_root"):
        qdata.load("cifar10", "train")
