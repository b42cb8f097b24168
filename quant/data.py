"""Datasets the quantization trainer can run on a CPU, with nothing downloaded.

- :func:`digits` - the real scikit-learn 8x8 handwritten digits (1797 images, 10 classes; the
  data ships inside scikit-learn), split 80/20 by a seeded, class-stratified shuffle.
- :func:`cifar10` - CIFAR-10 from a local folder in its standard python pickle layout
  (``data_batch_1`` .. ``data_batch_5``, ``test_batch``), for users who have it.
- :func:`synthetic` - a learnable toy set (class-dependent means plus Gaussian noise) for tests.

Every loader returns an :class:`ImageDataset`: float32 images ``(N, C, H, W)``, int64 labels
``(N,)``, and an optional augmentation applied per sample. Augmentation draws from torch's
global RNG, which the trainer reseeds each epoch, so runs stay reproducible.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "ImageDataset",
    "carve_validation",
    "cifar10",
    "digits",
    "load",
    "random_crop_flip",
    "synthetic",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "fit", "val")
VAL_FRACTION = 0.2
"""Share of the training split held out as ``"val"`` (``"fit"`` is the rest)."""
VAL_SEED = 12_345
DATASETS = ("digits", "cifar10", "synthetic")
# Per-channel statistics of the 50 000 CIFAR-10 training images (the usual published values).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
CIFAR10_SUBDIR = "cifar-10-batches-py"
CIFAR10_IMAGE_BYTES = 3 * 32 * 32

Transform = Callable[[torch.Tensor], torch.Tensor]


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images ``(N, C, H, W)`` float32 and labels ``(N,)`` int64 held in memory.

    ``transform`` (optional) maps one image ``(C, H, W)`` to an augmented image of the same shape.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, num_classes: int, *,
                 transform: Transform | None = None, name: str = "") -> None:
        if images.ndim != 4:
            raise ValueError(f"images: expected a 4-D tensor (N, C, H, W), got shape "
                             f"{tuple(images.shape)}")
        if targets.ndim != 1 or targets.shape[0] != images.shape[0]:
            raise ValueError(f"targets: expected shape ({images.shape[0]},), got "
                             f"{tuple(targets.shape)}")
        if num_classes < 1:
            raise ValueError(f"num_classes: {num_classes} is not allowed; must be >= 1")
        self.images = images.to(torch.float32).contiguous()
        self.targets = targets.to(torch.int64).contiguous()
        self.num_classes = int(num_classes)
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[index]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(C, H, W)``."""
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, n={len(self)}, shape={self.input_shape}, "
                f"classes={self.num_classes}, augment={self.transform is not None})")


def _check_split(split: str, allowed: Sequence[str] = ("train", "test")) -> None:
    if split not in allowed:
        raise ValueError(f"split: {split!r} is not allowed; use one of {', '.join(allowed)}"
                         + (" (fit/val: through quant.data.load)" if split in SPLITS else ""))


def digits(split: str = "train", seed: int = 0, *, test_fraction: float = 0.2) -> ImageDataset:
    """The scikit-learn digits (real 8x8 scans, values 0..16) as ``(N, 1, 8, 8)`` images.

    The split is a class-stratified shuffle seeded by ``seed`` (1437 train / 360 test images at the
    default 20 % test fraction), so train and test are disjoint and each class keeps its share.
    Pixels are scaled to [0, 1] and standardised with the mean and standard deviation of the
    training split (one scalar each), so test images never inform the normalisation.
    """
    _check_split(split)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: {test_fraction} is not allowed; must be in (0, 1)")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float32) / 16.0  # (1797, 64), values in [0, 1]
    y = np.asarray(bunch.target, dtype=np.int64)
    index = np.arange(len(y))
    train_idx, test_idx = train_test_split(index, test_size=test_fraction, random_state=seed,
                                           stratify=y)
    mean = float(x[train_idx].mean())
    std = float(x[train_idx].std())
    chosen = np.sort(train_idx if split == "train" else test_idx)
    images = torch.from_numpy((x[chosen] - mean) / std).reshape(-1, 1, 8, 8)
    return ImageDataset(images, torch.from_numpy(y[chosen]), 10, name=f"digits-{split}")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists/bytes and numpy arrays only - CIFAR batches need nothing else, and this
    keeps a tampered file from running code."""

    _ALLOWED = frozenset({"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"})

    def find_class(self, module: str, name: str) -> object:
        numpy_array = module.split(".")[0] == "numpy" and name in self._ALLOWED
        # Protocol-2 pickles written by Python 3 store bytes through _codecs.encode.
        if numpy_array or (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}; only numpy "
                                     "arrays are allowed in the standard format")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict with b'data' and b'labels', got "
                         f"{type(batch).__name__}")
    # Keys are bytes in the original Python-2 pickles, str if someone re-pickled them.
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: missing key 'data' or 'labels' (found "
                         f"{sorted(map(str, batch))})")
    data = np.asarray(data, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != CIFAR10_IMAGE_BYTES or len(labels) != data.shape[0]:
        raise ValueError(f"{path}: 'data' must be (N, {CIFAR10_IMAGE_BYTES}) uint8 with N labels, "
                         f"got data {data.shape} and {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data, labels


def _cifar_dir(root: Path) -> Path:
    """``root`` itself or ``root/cifar-10-batches-py`` (the folder the official tarball unpacks)."""
    nested = root / CIFAR10_SUBDIR
    if not (root / "test_batch").exists() and nested.is_dir():
        return nested
    return root


def random_crop_flip(padding: int = 4) -> Transform:
    """The standard CIFAR augmentation: zero-pad by ``padding``, random crop back, random h-flip.

    Draws from torch's global RNG (reseeded per epoch by the trainer)."""
    if padding < 0:
        raise ValueError(f"padding: {padding} is not allowed; must be >= 0")

    def transform(x: torch.Tensor) -> torch.Tensor:  # x: (C, H, W)
        _, h, w = x.shape
        if padding:
            x = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        top, left = (int(v) for v in torch.randint(0, 2 * padding + 1, (2,)))
        x = x[:, top:top + h, left:left + w]
        if bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return x

    return transform


def cifar10(root: str | Path, split: str = "train", *, augment: bool = False) -> ImageDataset:
    """CIFAR-10 from ``root`` in the standard python format as normalised ``(N, 3, 32, 32)`` images.

    Expected layout (``root`` may also be the folder containing ``cifar-10-batches-py/``)::

        root/data_batch_1 ... root/data_batch_5   train, 10 000 images each
        root/test_batch                           test, 10 000 images

    each a pickled dict with ``b'data'`` (N x 3072 uint8, row-major R, G, B planes of 32x32) and
    ``b'labels'`` (N ints in 0..9). Pixels are scaled to [0, 1] and normalised per channel with
    :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`. ``augment`` adds :func:`random_crop_flip`.
    """
    _check_split(split)
    base = _cifar_dir(Path(root))
    names = CIFAR10_TRAIN_FILES if split == "train" else CIFAR10_TEST_FILES
    missing = [n for n in names if not (base / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 {split} split: missing {', '.join(str(base / n) for n in missing)}; "
            f"expected the standard python layout {base}/data_batch_1..data_batch_5 and "
            f"{base}/test_batch (or {Path(root)}/{CIFAR10_SUBDIR}/...), as unpacked from "
            "cifar-10-python.tar.gz")
    parts = [_read_cifar_batch(base / n) for n in names]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    images = torch.from_numpy(data).reshape(-1, 3, 32, 32).to(torch.float32) / 255.0
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    images = (images - mean) / std
    log.info("loaded CIFAR-10 %s split: %d images from %s", split, len(labels), base)
    return ImageDataset(images, torch.from_numpy(labels), 10,
                        transform=random_crop_flip() if augment else None, name=f"cifar10-{split}")


def synthetic(n: int, shape: Sequence[int] = (1, 8, 8), classes: int = 10, seed: int = 0, *,
              split: str = "train", noise: float = 1.0) -> ImageDataset:
    """A learnable toy set: ``x = mu[y] + noise * N(0, I)`` with class means ``mu ~ N(0, I)``.

    The class means depend only on ``seed`` and the labels/noise on ``(seed, split)``, so the
    train and test splits share the task but not the samples. Balanced classes (``n // classes``
    each, the remainder spread over the first classes), shuffled.
    """
    _check_split(split)
    if n < 1:
        raise ValueError(f"n: {n} is not allowed; must be >= 1")
    if classes < 2:
        raise ValueError(f"classes: {classes} is not allowed; must be >= 2")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape: {shape} is not allowed; must be (C, H, W) with positive sizes")
    if noise < 0:
        raise ValueError(f"noise: {noise} is not allowed; must be >= 0")
    means = torch.randn((classes, *shape), generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed * 2 + 1 + SPLITS.index(split) + 1_000_003)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=g)]
    images = means[labels] + noise * torch.randn((n, *shape), generator=g)
    return ImageDataset(images, labels, classes, name=f"synthetic-{split}")


def carve_validation(train: ImageDataset, split: str) -> ImageDataset:
    """``"fit"`` (80 %) or ``"val"`` (20 %) of a training split: a fixed, class-stratified
    shuffle (seed ``VAL_SEED``), so hyperparameters are chosen without the test split."""
    if split not in ("fit", "val"):
        raise ValueError(f"split: {split!r} is not allowed here; use fit or val")
    from sklearn.model_selection import train_test_split

    index = np.arange(len(train))
    fit_idx, val_idx = train_test_split(index, test_size=VAL_FRACTION, random_state=VAL_SEED,
                                        stratify=train.targets.numpy())
    chosen = torch.from_numpy(np.sort(fit_idx if split == "fit" else val_idx))
    return ImageDataset(train.images[chosen], train.targets[chosen], train.num_classes,
                        transform=train.transform if split == "fit" else None,
                        name=f"{train.name}-{split}")


def load(name: str, split: str, *, seed: int = 0, root: str | Path | None = None,
         augment: bool = False, shape: Sequence[int] = (1, 8, 8), n: int = 1000) -> ImageDataset:
    """Dispatch by dataset name (``digits``, ``cifar10``, ``synthetic``) - what the trainer uses.

    ``split`` is ``train``/``test``, or ``fit``/``val``: the training split without / with only
    its held-out validation fifth (:func:`carve_validation`)."""
    _check_split(split, SPLITS)
    if split in ("fit", "val"):
        return carve_validation(load(name, "train", seed=seed, root=root, augment=augment,
                                     shape=shape, n=n), split)
    if name == "digits":
        return digits(split, seed)
    if name == "cifar10":
        if root is None:
            raise ValueError("data_root: None is not allowed for cifar10; give the folder holding "
                             "data_batch_1..5 and test_batch")
        return cifar10(root, split, augment=augment and split == "train")
    if name == "synthetic":
        return synthetic(n if split == "train" else max(n // 4, 10), shape, 10, seed, split=split)
    raise ValueError(f"data: {name!r} is not allowed; use one of {', '.join(DATASETS)}")
