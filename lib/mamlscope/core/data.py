"""Datasets and few-shot task samplers: Omniglot, MNIST, sinusoid regression.

Omniglot follows the protocol of Finn et al. (2017) [F]:

* the 1,623 characters of both official archives (background + evaluation) are pooled and
  shuffled with a fixed seed; 1,200 are for meta-training, the other 423 for meta-testing;
* images are resized once to 28×28 (Lanczos) and inverted so strokes are 1, then cached;
* an N-way K-shot task draws N characters, one rotation by a multiple of 90° per character
  (as in Finn's code), K support and Q query drawings per character.

Every task is a pure function of ``(sampler seed, task index)``, so a training run that resumes
at step ``s`` sees exactly the tasks it would have seen, and the 600 test tasks are fixed.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mamlscope.paths import cache_root, data_root
from mamlscope.progress import progress_bar

OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OMNIGLOT_ARCHIVES = {  # archive → md5, as in torchvision.datasets.Omniglot
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
N_OMNIGLOT_CHARACTERS = 1623
N_OMNIGLOT_TRAIN = 1200
OMNIGLOT_SPLIT_SEED = 1  # the split of Finn's code: random.seed(1); random.shuffle(characters)
IMAGE_SIZE = 28
TEST_SEED = 20170309  # the fixed meta-test tasks: the arXiv date of MAML; never tied to a run's seed
N_TEST_TASKS = 600


class DataNotFoundError(FileNotFoundError):
    """A dataset is not under the data root and could not be downloaded."""


def _data_missing_message(name: str, root: Path, expected: str, reason: str) -> str:
    return (  # the first line says what is wrong and how to fix it; the details follow
        f"{name} not found under the data root {root}: set MAML_DATA to a folder that holds it "
        "(e.g. `export MAML_DATA=/path/to/data`), or put the files there; see README.md, section 'Data'.\n"
        f"Expected: {expected}\n"
        f"Why: {reason}."
    )


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------
@dataclass
class Task:
    """One few-shot task. Shapes for an N-way K-shot task with Q queries per class:
    ``x_support (N·K, C, H, W)``, ``y_support (N·K,)``, ``x_query (N·Q, C, H, W)``,
    ``y_query (N·Q,)``; labels are ``0..N-1``. A batch of tasks stacks a leading task axis."""

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor

    def to(self, device, dtype=None) -> "Task":
        def cast(t, is_x):
            return t.to(device=device, dtype=dtype if (is_x and dtype is not None) else t.dtype)

        return Task(cast(self.x_support, True), cast(self.y_support, False),
                    cast(self.x_query, True), cast(self.y_query, False))

    @staticmethod
    def stack(tasks: list["Task"]) -> "Task":
        return Task(*(torch.stack([getattr(t, f) for t in tasks]) for f in
                      ("x_support", "y_support", "x_query", "y_query")))

    def __getitem__(self, i: int) -> "Task":
        """The ``i``-th task of a batch."""
        return Task(self.x_support[i], self.y_support[i], self.x_query[i], self.y_query[i])

    def __len__(self) -> int:
        return self.x_support.shape[0]


def task_generator(seed: int, index: int) -> torch.Generator:
    """A generator that depends only on ``(seed, index)`` (hashed, so nearby seeds differ)."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


class ClassTasks:
    """N-way K-shot classification tasks over an image tensor ``images (n_classes, n_per_class,
    H, W)`` (uint8 or float in [0, 1]).

    ``rotate=True`` applies one random rotation by k·90° to all images of a class within a task
    (Finn et al.'s augmentation). ``task(i)`` and ``batch(indices)`` are deterministic.
    """

    def __init__(self, images: torch.Tensor, n_way: int, k_shot: int, q_query: int, *,
                 seed: int, rotate: bool = False, name: str = "dataset"):
        n_classes, n_per_class = images.shape[:2]
        if n_way < 2:
            raise ValueError(f"n_way={n_way}: a classification task needs at least 2 classes.")
        if n_way > n_classes:
            raise ValueError(
                f"n_way={n_way} is more ways than the {n_classes} classes of {name}; "
                f"use n_way <= {n_classes}.")
        if k_shot < 1 or q_query < 1:
            raise ValueError(f"k_shot={k_shot}, q_query={q_query}: both must be >= 1.")
        if k_shot + q_query > n_per_class:
            raise ValueError(
                f"k_shot + q_query = {k_shot + q_query} examples per class are needed, but "
                f"{name} has only {n_per_class} per class; lower k_shot or q_query.")
        self.images, self.name = images, name
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.seed, self.rotate = seed, rotate

    @property
    def n_classes(self) -> int:
        return self.images.shape[0]

    def task(self, index: int) -> Task:
        g = task_generator(self.seed, index)
        n, k, q = self.n_way, self.k_shot, self.q_query
        classes = torch.randperm(self.n_classes, generator=g)[:n]
        rotations = torch.randint(0, 4, (n,), generator=g) if self.rotate else torch.zeros(n, dtype=torch.long)
        draws = torch.stack([torch.randperm(self.images.shape[1], generator=g)[: k + q] for _ in range(n)])
        x = self.images[classes[:, None], draws]  # (n, k+q, H, W)
        if self.rotate:
            x = torch.stack([torch.rot90(x[c], int(rotations[c]), dims=(-2, -1)) for c in range(n)])
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = x.unsqueeze(2)  # channel axis: (n, k+q, 1, H, W)
        labels = torch.arange(n)[:, None]
        return Task(
            x_support=x[:, :k].reshape(n * k, *x.shape[2:]),
            y_support=labels.expand(n, k).reshape(-1),
            x_query=x[:, k:].reshape(n * q, *x.shape[2:]),
            y_query=labels.expand(n, q).reshape(-1),
        )

    def batch(self, indices) -> Task:
        return Task.stack([self.task(int(i)) for i in indices])


# --------------------------------------------------------------------------------------------
# Omniglot
# --------------------------------------------------------------------------------------------
def _omniglot_character_dirs(root: Path) -> list[Path]:
    dirs = []
    for archive in OMNIGLOT_ARCHIVES:
        base = root / "omniglot-py" / archive
        dirs += sorted(p for p in base.glob("*/character*") if p.is_dir())
    return dirs


def _download_omniglot(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    target = root / "omniglot-py"
    for archive, md5 in OMNIGLOT_ARCHIVES.items():
        if not (target / archive).is_dir():
            download_and_extract_archive(OMNIGLOT_URL + archive + ".zip", str(target),
                                         filename=archive + ".zip", md5=md5)


def _undo_empty_folders(path: Path, root: Path, root_existed: bool) -> None:
    """Remove the empty folders a failed download left: under ``path``, ``path`` itself and its
    parents up to ``root`` (``root`` only if the download created it). A folder holding a file
    is kept, and so is every folder above it."""
    if path.is_dir():
        for dirpath, _, _ in os.walk(path, topdown=False):
            if not any(Path(dirpath).iterdir()):
                Path(dirpath).rmdir()
    top = root if root_existed else root.parent
    for folder in [path, *path.parents]:
        if folder == top or (folder.is_dir() and any(folder.iterdir())):
            break
        if folder.is_dir():
            folder.rmdir()


def _locate_omniglot(root: Path, download: bool) -> list[Path]:
    dirs = _omniglot_character_dirs(root)
    if len(dirs) == N_OMNIGLOT_CHARACTERS:
        return dirs
    expected = f"{root}/omniglot-py/images_background/<Alphabet>/characterNN/*.png (and images_evaluation)"
    if len(dirs) not in (0, N_OMNIGLOT_CHARACTERS):
        raise DataNotFoundError(_data_missing_message(
            "Omniglot is incomplete", root, expected,
            f"found {len(dirs)} of {N_OMNIGLOT_CHARACTERS} character folders"))
    if not download:
        raise DataNotFoundError(_data_missing_message("Omniglot", root, expected, "download=False"))
    existed = root.exists()
    try:
        _download_omniglot(root)
    except Exception as err:  # no network, read-only root, bad checksum, ...
        _undo_empty_folders(root / "omniglot-py", root, existed)
        raise DataNotFoundError(_data_missing_message(
            "Omniglot", root, expected, f"the download failed: {type(err).__name__}: {err}")) from err
    return _locate_omniglot(root, download=False)


def _load_resized(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), resample=Image.LANCZOS)
        return 255 - np.asarray(im, dtype=np.uint8)  # strokes → 255, background → 0


def load_omniglot(root=None, *, download: bool = True, cache=None, progress: bool | None = None) -> torch.Tensor:
    """All 1,623 Omniglot characters as ``uint8 (1623, 20, 28, 28)``, strokes bright.

    Characters are ordered background archive first, then evaluation, each sorted by path.
    The resized tensor is cached under ``<cache root>/omniglot28.pt`` (the data root may be
    read-only); the cache is rebuilt if unreadable.
    """
    root = data_root(root)
    cache_file = cache_root(cache) / f"omniglot{IMAGE_SIZE}.pt"
    if cache_file.is_file():
        try:
            images = torch.load(cache_file, weights_only=True)
            if images.shape == (N_OMNIGLOT_CHARACTERS, 20, IMAGE_SIZE, IMAGE_SIZE):
                return images
        except Exception:
            pass  # a partial or corrupt cache file is ours to rebuild; it holds no user data
    dirs = _locate_omniglot(root, download)

    images = torch.empty(N_OMNIGLOT_CHARACTERS, 20, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    for c, d in enumerate(progress_bar(dirs, desc="resizing Omniglot", enable=progress)):
        files = sorted(d.glob("*.png"))
        if len(files) != 20:
            raise DataNotFoundError(_data_missing_message(
                "Omniglot is incomplete", root, str(d), f"{len(files)} of 20 drawings"))
        for j, f in enumerate(files):
            images[c, j] = torch.from_numpy(_load_resized(f))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")  # concurrent builders
    torch.save(images, tmp)
    tmp.replace(cache_file)
    return images


def omniglot_split(split: str) -> torch.Tensor:
    """Indices of the ``"train"`` (1,200) or ``"test"`` (423) characters: Finn's protocol."""
    perm = np.random.RandomState(OMNIGLOT_SPLIT_SEED).permutation(N_OMNIGLOT_CHARACTERS)
    if split == "train":
        return torch.from_numpy(np.sort(perm[:N_OMNIGLOT_TRAIN]))
    if split == "test":
        return torch.from_numpy(np.sort(perm[N_OMNIGLOT_TRAIN:]))
    raise ValueError(f"unknown Omniglot split {split!r}; use 'train' or 'test'.")


def omniglot_subset(split: str, n_characters: int = 0) -> torch.Tensor:
    """The first ``n_characters`` of a fixed random order of the ``split`` characters (all when
    0), sorted: a smaller meta-training set on which meta-overfitting comes early ([L] §5.1)."""
    idx = omniglot_split(split)
    if not n_characters:
        return idx
    if not 0 < n_characters <= len(idx):
        raise ValueError(f"n_characters={n_characters}: the {split!r} split has {len(idx)} characters; "
                         f"use 1 … {len(idx)}, or 0 for all.")
    order = np.random.RandomState(OMNIGLOT_SPLIT_SEED + 1).permutation(len(idx))
    return idx[torch.from_numpy(np.sort(order[:n_characters]))]


def omniglot_tasks(split: str, n_way: int, k_shot: int, q_query: int, *, seed: int,
                   rotate: bool = True, root=None, download: bool = True, n_characters: int = 0) -> ClassTasks:
    """N-way K-shot Omniglot tasks from the ``split`` characters (the first ``n_characters`` of
    them in a fixed random order, :func:`omniglot_subset`; all when 0)."""
    images = load_omniglot(root, download=download)[omniglot_subset(split, n_characters)]
    return ClassTasks(images, n_way, k_shot, q_query, seed=seed, rotate=rotate,
                      name=f"Omniglot-{split} ({images.shape[0]} characters)")


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------
def load_mnist(train: bool = True, root=None, *, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST via ``torchvision.datasets.MNIST`` on the data root: ``uint8 (n, 28, 28)``, labels."""
    from torchvision.datasets import MNIST

    root = data_root(root)
    expected = f"{root}/MNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"
    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise DataNotFoundError(_data_missing_message("MNIST", root, expected, "download=False")) from None
        existed = root.exists()
        try:
            ds = MNIST(str(root), train=train, download=True)
        except Exception as err:
            _undo_empty_folders(root / "MNIST" / "raw", root, existed)
            raise DataNotFoundError(_data_missing_message(
                "MNIST", root, expected, f"the download failed: {type(err).__name__}: {err}")) from err
    return ds.data, ds.targets


def mnist_tasks(split: str, n_way: int, k_shot: int, q_query: int, *, seed: int, root=None,
                download: bool = True) -> ClassTasks:
    """N-way K-shot tasks from the MNIST ``split`` ("train" or "test") digits, as Agarwal [A] plans
    few-shot sets drawn from MNIST: the 10 digits are the classes (each truncated to the size of
    the smallest, so that every class has as many images), labels permuted per task, no rotation."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; use 'train' or 'test'.")
    x, y = load_mnist(split == "train", root, download=download)
    n = int(torch.bincount(y).min())
    images = torch.stack([x[y == c][:n] for c in range(10)])  # (10, n, 28, 28)
    return ClassTasks(images, n_way, k_shot, q_query, seed=seed, rotate=False, name=f"MNIST-{split}")


# --------------------------------------------------------------------------------------------
# Sinusoid regression ([F] §5.1, [L] §5.3.1)
# --------------------------------------------------------------------------------------------
@dataclass
class SinusoidTasks:
    """Regression tasks ``y = A sin(x − φ)``, ``x ~ U(x_range)``, ``A ~ U(amplitude)``,
    ``φ ~ U(phase)``. Disjoint amplitude/phase ranges for meta-train and meta-test give the
    out-of-distribution split of [L] §5.3.1. Tensors: ``x (K, 1)``, ``y (K, 1)``."""

    k_shot: int = 10
    q_query: int = 10
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    seed: int = 0

    def __post_init__(self):
        for name in ("amplitude", "phase", "x_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name}={getattr(self, name)}: the lower bound exceeds the upper.")
        if self.k_shot < 1 or self.q_query < 1:
            raise ValueError(f"k_shot={self.k_shot}, q_query={self.q_query}: both must be >= 1.")

    def task(self, index: int) -> Task:
        g = task_generator(self.seed, index)

        def uniform(bounds, *shape):
            lo, hi = bounds
            return lo + (hi - lo) * torch.rand(*shape, generator=g)

        amp, phase = uniform(self.amplitude, 1), uniform(self.phase, 1)
        x = uniform(self.x_range, self.k_shot + self.q_query, 1)
        y = amp * torch.sin(x - phase)
        k = self.k_shot
        return Task(x[:k], y[:k], x[k:], y[k:])

    def batch(self, indices) -> Task:
        return Task.stack([self.task(int(i)) for i in indices])


# --------------------------------------------------------------------------------------------
# The fixed meta-test tasks: tasks 0 … n−1 of the test split's sampler with seed TEST_SEED, so
# every chapter and every run is scored on the same tasks.
# --------------------------------------------------------------------------------------------
def test_task_sampler(dataset: str, n_way: int, k_shot: int, q_query: int, **sinusoid_ranges):
    """The sampler behind the fixed meta-test tasks of ``dataset``."""
    if dataset == "omniglot":
        return omniglot_tasks("test", n_way, k_shot, q_query, seed=TEST_SEED)
    if dataset == "sinusoid":
        return SinusoidTasks(k_shot=k_shot, q_query=q_query, seed=TEST_SEED, **sinusoid_ranges)
    if dataset == "mnist":
        return mnist_tasks("test", n_way, k_shot, q_query, seed=TEST_SEED)
    raise ValueError(f"no meta-test tasks for dataset {dataset!r}; use 'omniglot', 'mnist' or 'sinusoid'.")


def fixed_test_tasks(dataset: str, n_way: int, k_shot: int, q_query: int,
                     n_tasks: int = N_TEST_TASKS, **sinusoid_ranges) -> Task:
    """Tasks ``0 … n_tasks−1`` of :func:`test_task_sampler`, stacked (leading task axis)."""
    return test_task_sampler(dataset, n_way, k_shot, q_query, **sinusoid_ranges).batch(range(n_tasks))


# --------------------------------------------------------------------------------------------
# Before work starts: is every dataset a command needs at hand?
# --------------------------------------------------------------------------------------------
def check_available(datasets, root=None, *, download: bool = True) -> None:
    """Raise :class:`DataNotFoundError` (its message says where the data was looked for and how
    to fix it) unless every dataset in ``datasets`` (``"omniglot"``, ``"mnist"``; ``"sinusoid"``
    needs none) is under the data root or in the resized cache, downloading what is missing when
    ``download``. Cheap when the data is there: it only looks for the files."""
    for name in sorted(set(datasets)):
        if name == "omniglot":
            if not (cache_root() / f"omniglot{IMAGE_SIZE}.pt").is_file():
                _locate_omniglot(data_root(root), download)
        elif name == "mnist":
            for train in (True, False):
                load_mnist(train, root, download=download)
        elif name != "sinusoid":
            raise ValueError(f"unknown dataset {name!r}; use 'omniglot', 'mnist' or 'sinusoid'.")
