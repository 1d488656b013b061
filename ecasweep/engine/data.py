"""Datasets and the device-resident batch loader.

``load_dataset(cfg, seed, device)`` returns a ``LoadedData`` that yields normalised float batches on
the device. Small datasets (Fashion-MNIST, CIFAR-10/100, synthetic) are held whole on the device as
uint8 and augmented there, a batch at a time, with two gathers per batch (no DataLoader, no Python
loop per image). Folder datasets (ImageNet, any ImageFolder) go through torchvision transforms in
DataLoader workers.

Augmentation recipes (``data.augment = true``; with false, training batches are only normalised):

* Fashion-MNIST, CIFAR-10/100, synthetic: random crop of the original size from the image zero-padded
  by 2 (Fashion-MNIST, synthetic) or 4 (CIFAR) pixels, random horizontal flip (p = 0.5), then
  per-channel normalisation (Fashion-MNIST mean 0.2860 std 0.3530; CIFAR-10 mean (0.4914, 0.4822,
  0.4465) std (0.2470, 0.2435, 0.2616); CIFAR-100 mean (0.5071, 0.4865, 0.4409) std (0.2673, 0.2564,
  0.2762); synthetic: statistics of its own training images). The CIFAR recipe is He et al.'s (2016);
  Fashion-MNIST gets the same recipe scaled to 28 px.
* ImageNet / ImageFolder, the ECA-Net paper's (section 4.1): train ``RandomResizedCrop(224)`` and
  ``RandomHorizontalFlip``; evaluation ``Resize(256)``, ``CenterCrop(224)``; ImageNet mean/std.

Determinism: the order and the augmentation of epoch ``e`` come from a generator seeded from
``(seed, e)`` alone, drawn on the CPU, so every model trained from one seed sees the same batches, a
trial resumed at epoch ``e`` regenerates them without saved RNG state, and CPU and GPU agree. The
validation hold-out and the training subset come from ``seed`` alone. Nothing here draws from the
global torch RNG.

Example:
    >>> from ecasweep.engine.config import DataConfig
    >>> data = load_dataset(DataConfig("synthetic", synthetic_size=256), seed=0)
    >>> x, y = next(data.train_batches(epoch=0, batch_size=64))
    >>> tuple(x.shape), x.dtype, y.dtype
    ((64, 3, 16, 16), torch.float32, torch.int64)
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision import transforms

from .config import DataConfig
from ..errors import ConfigError, DataError

#: where Debian's ``dataset-fashion-mnist`` package installs the four IDX files
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
#: Fashion-MNIST's IDX files (each may also be gzipped) and the shape each must have
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}
#: per-channel (mean, std) of the small datasets, on the 0-1 scale
STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: zero padding of the random crop
CROP_PADDING = {"fashion-mnist": 2, "cifar10": 4, "cifar100": 4, "synthetic": 2}
SPLITS = ("test", "val")

_SPLIT_STREAM, _EPOCH_STREAM = 0, 1
_SYNTHETIC_SEED = 20200304  # fixed: the synthetic images must not depend on the trial's seed
_SYNTHETIC_CLASSES, _SYNTHETIC_SIZE = 10, 16


def cache_dir() -> Path:
    """Where downloads go: ``$XDG_CACHE_HOME/ecasweep/data``, by default ``~/.cache/ecasweep/data``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ecasweep" / "data"


def generator(seed: int, stream: int, epoch: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, stream, epoch)`` only (SeedSequence mixes them)."""
    state = np.random.SeedSequence([seed, stream, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# --- choosing images -----------------------------------------------------------------------------

def stratified_pick(labels: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Sorted indices of ``k`` images chosen at random, as evenly over the classes as they allow.

    Classes take turns (in a random order) drawing a random image until ``k`` are chosen, so class
    counts differ by at most one unless a class runs out.
    """
    n = labels.numel()
    classes = int(labels.max()) + 1 if n else 1
    perm = torch.randperm(n, generator=gen)
    turn = torch.randperm(classes, generator=gen)
    by_class = torch.argsort(labels[perm], stable=True)
    sorted_labels = labels[perm][by_class]
    counts = torch.bincount(sorted_labels, minlength=classes)
    rank = torch.arange(n) - (torch.cumsum(counts, 0) - counts)[sorted_labels]
    chosen = torch.argsort(rank * classes + turn[sorted_labels])[:k]
    return perm[by_class[chosen]].sort().values


def split_indices(labels: Tensor, val_split: int, subset: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """(train, val) indices into the official training split: hold out ``val_split``, keep ``subset``."""
    n = labels.numel()
    if val_split >= n:
        raise ConfigError("data.val_split", f"holds out {val_split} images but the training split has only {n}")
    gen = generator(seed, _SPLIT_STREAM)
    val = stratified_pick(labels, val_split, gen)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    train = torch.arange(n)[keep]
    if subset is not None:
        if subset > train.numel():
            raise ConfigError("data.subset", f"asks for {subset} training images but only {train.numel()} are "
                                             f"available ({n} minus data.val_split = {val_split})")
        train = train[stratified_pick(labels[train], subset, gen)]
    return train, val


# --- augmentation on the device -----------------------------------------------------------------

def pad_images(images: Tensor, pad: int) -> Tensor:
    """Zero-pad NHWC ``images`` by ``pad`` pixels on every side."""
    return F.pad(images, (0, 0, pad, pad, pad, pad)) if pad else images


def crop_flip(padded: Tensor, index: Tensor, offsets: Tensor, flips: Tensor, size: tuple[int, int]) -> Tensor:
    """Windows of ``size`` cut from NHWC ``padded[index]``, mirrored where ``flips``.

    ``offsets`` (B, 2) holds each window's top-left (row, column). Returns an NCHW view whose memory is
    channels_last. Whole rows are copied first (``index_select``), then columns gathered, which on the
    CPU is about twice as fast as one gather over (image, row, column).
    """
    (h, w), (n_pad, h_pad, w_pad, c) = size, padded.shape
    rows = index[:, None] * h_pad + offsets[:, :1] + torch.arange(h, device=padded.device)
    strips = padded.view(n_pad * h_pad, w_pad, c).index_select(0, rows.view(-1)).view(-1, h, w_pad, c)
    cols = torch.arange(w, device=padded.device)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + offsets[:, 1:]
    return strips.gather(2, cols[:, None, :, None].expand(-1, h, w, c)).permute(0, 3, 1, 2)


class _Images(NamedTuple):
    """A small dataset decoded on the CPU: NHWC uint8 images, int64 labels, and where it came from."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: str


# --- Fashion-MNIST -----------------------------------------------------------------------------

def read_idx(path: str | Path) -> Tensor:
    """An IDX file of unsigned bytes (gzipped or not) as a uint8 tensor of the shape its header gives.

    Raises ``DataError`` naming the file when it is unreadable, truncated or not such an IDX file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from e
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from e
    if len(data) < 4 or data[:2] != b"\0\0":
        raise DataError(f"{path}: not an IDX file (magic number {data[:4].hex() or 'missing'})")
    if data[2] != 0x08:
        raise DataError(f"{path}: IDX element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions, {len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    found = len(data) - header
    if found != expected:
        state = "truncated" if found < expected else "has trailing bytes"
        raise DataError(f"{path}: {state}: header {shape} needs {expected} bytes of data, found {found}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(shape)


def find_idx_files(directory: str | Path) -> dict[str, Path]:
    """Fashion-MNIST's IDX files found in ``directory`` or its ``FashionMNIST/raw`` (torchvision's
    layout), by name; uncompressed preferred. Fewer than four entries means incomplete."""
    best: dict[str, Path] = {}
    for folder in (Path(directory), Path(directory) / "FashionMNIST" / "raw"):
        found = {}
        for name in FASHION_MNIST_FILES:
            path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
            if path is not None:
                found[name] = path
        if len(found) > len(best):
            best = found
    return best


@functools.lru_cache(maxsize=4)
def _read_fashion_mnist(files: tuple[Path, Path, Path, Path]) -> _Images:
    arrays = []
    for path, shape in zip(files, FASHION_MNIST_FILES.values()):
        x = read_idx(path)
        if tuple(x.shape) != shape:
            raise DataError(f"{path}: expected shape {shape}, found {tuple(x.shape)}")
        if x.dim() == 1 and int(x.max()) > 9:
            raise DataError(f"{path}: label {int(x.max())} is out of range 0-9")
        arrays.append(x.unsqueeze(-1) if x.dim() == 3 else x.long())
    return _Images(*arrays, source=str(files[0].parent))


def _places(cfg: DataConfig) -> list[tuple[str, Path | None]]:
    """Where to look when no data directory is given: $ECASWEEP_DATA (a search path, not a promise)."""
    env = os.environ.get("ECASWEEP_DATA")
    return [("$ECASWEEP_DATA", Path(env) if env else None)]


def _no_fallback(cfg: DataConfig, found: Path) -> None:
    """A $ECASWEEP_DATA that names no directory (missing, or a file) is a mistake to say, never a
    reason to train quietly on the copy ``found`` elsewhere; a directory that does not hold this
    dataset is a search path like the others (it may hold another dataset)."""
    env = os.environ.get("ECASWEEP_DATA")
    if not env or Path(env).is_dir():
        return
    state = "is a file" if Path(env).exists() else "does not exist"
    raise DataError(f"{cfg.dataset}: ECASWEEP_DATA={env} {state}, so it holds no {cfg.dataset}; there is a copy in "
                    f"{found}: point ECASWEEP_DATA at a directory that holds the data, or unset it to use that copy")


def _given_dir_error(cfg: DataConfig, holds: str) -> DataError:
    """An explicit data directory that does not hold the data: an error, never a silent fallback."""
    path = Path(cfg.data_dir)
    state = "does not exist" if not path.exists() else "is not a directory" if not path.is_dir() \
        else f"does not hold {holds}"
    return DataError(f"{cfg.dataset}: data directory {path} (--data-dir / data.data_dir) {state}; "
                     f"give a directory with {holds}, or leave it unset to use $ECASWEEP_DATA, the "
                     f"installed copy or a download")


def _download(cls: type, root: Path) -> str | None:
    """Let torchvision download ``cls`` into ``root``; the reason when it could not."""
    try:
        cls(str(root), train=True, download=True)  # fetches both splits
    # Any failure (no network, proxy, checksum, disk) is reported together with the places tried.
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return None


def _load_fashion_mnist(cfg: DataConfig) -> _Images:
    if cfg.data_dir:
        found = find_idx_files(cfg.data_dir)
        if len(found) < len(FASHION_MNIST_FILES):
            raise _given_dir_error(cfg, f"Fashion-MNIST's {', '.join(FASHION_MNIST_FILES)} (.gz or not)")
        return _read_fashion_mnist(tuple(found[name] for name in FASHION_MNIST_FILES))
    places = _places(cfg) + [("Debian package", Path(DEBIAN_FASHION_MNIST)), ("cache", cache_dir())]
    tried = []
    for label, directory in places:
        if directory is None:
            tried.append(f"{label} (not set)")
            continue
        found = find_idx_files(directory)
        if len(found) == len(FASHION_MNIST_FILES):
            _no_fallback(cfg, directory)
            return _read_fashion_mnist(tuple(found[name] for name in FASHION_MNIST_FILES))
        missing = ", ".join(sorted(set(FASHION_MNIST_FILES) - set(found)))
        state = "no such directory" if not directory.is_dir() else f"missing {missing}"
        tried.append(f"{directory} ({state})")
    reason = _download(torchvision.datasets.FashionMNIST, cache_dir())
    found = find_idx_files(cache_dir())
    if reason is None and len(found) == len(FASHION_MNIST_FILES):
        _no_fallback(cfg, cache_dir())
        return _read_fashion_mnist(tuple(found[name] for name in FASHION_MNIST_FILES))
    tried.append(f"download into {cache_dir()} ({reason})")
    raise DataError(
        f"Fashion-MNIST not found; tried {'; '.join(tried)}. Install it with `apt-get install "
        f"dataset-fashion-mnist`, or set --data-dir or ECASWEEP_DATA to a directory holding "
        f"{', '.join(FASHION_MNIST_FILES)} (.gz or not), or allow network access so torchvision can "
        f"download it")


# --- CIFAR ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _read_cifar(cls_name: str, root: str) -> _Images:
    cls = getattr(torchvision.datasets, cls_name)
    folder = Path(root) / cls.base_folder
    try:
        train, test = cls(root, train=True), cls(root, train=False)
    except RuntimeError as e:  # torchvision's "Dataset not found or corrupted" (an md5 mismatch)
        raise DataError(f"{folder}: files missing or corrupt (checksum mismatch); delete it and get "
                        f"{cls_name} again") from e
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as e:
        raise DataError(f"{folder}: cannot read it ({type(e).__name__}: {e})") from e
    return _Images(torch.from_numpy(train.data), torch.tensor(train.targets),
                   torch.from_numpy(test.data), torch.tensor(test.targets), source=str(folder))


def _load_cifar(cfg: DataConfig) -> _Images:
    cls = torchvision.datasets.CIFAR10 if cfg.dataset == "cifar10" else torchvision.datasets.CIFAR100
    if cfg.data_dir:
        root = Path(cfg.data_dir)
        root = root.parent if root.name == cls.base_folder else root
        if not (root / cls.base_folder).is_dir():
            raise _given_dir_error(cfg, f"{cls.base_folder}/ (the python version from the CIFAR site)")
        return _read_cifar(cls.__name__, str(root))
    tried = []
    for label, root in _places(cfg) + [("cache", cache_dir())]:
        if root is None:
            tried.append(f"{label} (not set)")
            continue
        root = root.parent if root.name == cls.base_folder else root
        if (root / cls.base_folder).is_dir():
            _no_fallback(cfg, root / cls.base_folder)
            return _read_cifar(cls.__name__, str(root))
        tried.append(f"{root / cls.base_folder} (not found)")
    reason = _download(cls, cache_dir())
    if reason is None:
        _no_fallback(cfg, cache_dir() / cls.base_folder)
        return _read_cifar(cls.__name__, str(cache_dir()))
    tried.append(f"download into {cache_dir()} ({reason})")
    raise DataError(
        f"{cfg.dataset} not found; tried {'; '.join(tried)}. Download {cls.filename} from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it into the directory given by "
        f"--data-dir or ECASWEEP_DATA, or allow network access so torchvision can download it")


# --- synthetic -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _synthetic(size: int) -> _Images:
    """Per class a fixed colour and a smooth 4x4-cell pattern, plus noise: learnable in an epoch or two."""
    gen = torch.Generator().manual_seed(_SYNTHETIC_SEED)
    cells = torch.rand(_SYNTHETIC_CLASSES, 3, 4, 4, generator=gen)
    patterns = F.interpolate(cells, size=_SYNTHETIC_SIZE, mode="bilinear", align_corners=False)
    colours = torch.rand(_SYNTHETIC_CLASSES, 3, 1, 1, generator=gen)

    def make(n: int) -> tuple[Tensor, Tensor]:
        labels = (torch.arange(n) % _SYNTHETIC_CLASSES)[torch.randperm(n, generator=gen)]
        noise = 0.15 * torch.randn(n, 3, _SYNTHETIC_SIZE, _SYNTHETIC_SIZE, generator=gen)
        x = 0.5 * patterns[labels] + 0.5 * colours[labels] + noise
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous(), labels

    return _Images(*make(size), *make(max(1, size // 4)), source="synthetic")


def _channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.double().div(255).flatten(0, 2)
    return tuple(x.mean(0).tolist()), tuple(x.std(0).tolist())


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


# --- the loaded dataset --------------------------------------------------------------------------

class LoadedData:
    """A dataset ready to train on: batches of normalised float images and int64 labels on the device.

    ``num_train`` is the number of training images per epoch (after the validation hold-out and the
    subset). ``train_batches`` drops the last incomplete batch, except that a training split smaller
    than one batch gives one batch of all of it.
    """

    def __init__(self, name: str, num_classes: int, in_channels: int, image_size: tuple[int, int],
                 num_train: int, num_val: int, num_test: int, source: str, augmentation: str) -> None:
        self.name, self.num_classes, self.in_channels = name, num_classes, in_channels
        self.image_size = image_size
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.has_val = num_val > 0
        self.source, self.augmentation = source, augmentation

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, self.num_train // batch_size)

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "train": self.num_train, "val": self.num_val, "test": self.num_test,
                "num_classes": self.num_classes, "image_size": list(self.image_size),
                "source": self.source, "augmentation": self.augmentation}

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split == "val" and not self.has_val:
            raise ValueError("this dataset has no validation split (data.val_split is 0)")


class DeviceData(LoadedData):
    """A small dataset held on the device as uint8 and augmented there, a whole batch at once."""

    def __init__(self, name: str, num_classes: int, images: _Images, cfg: DataConfig, seed: int,
                 device: torch.device | str, channels_last: bool, stats: tuple[tuple[float, ...], ...]) -> None:
        train, val = split_indices(images.train_y, cfg.val_split, cfg.subset, seed)
        h, w, c = images.train_x.shape[1:]
        self._pad = CROP_PADDING[name] if cfg.augment else 0
        mean, std = stats
        recipe = (f"random crop {h}x{w} from zero padding {self._pad}, horizontal flip p=0.5; "
                  if cfg.augment else "none; ")
        super().__init__(name, num_classes, c, (h, w), train.numel(), val.numel(), len(images.test_y),
                         images.source, recipe + f"normalise mean {_fmt(mean)} std {_fmt(std)}")
        self.seed, self._augment, self._device = seed, cfg.augment, torch.device(device)
        self._format = torch.channels_last if channels_last else torch.contiguous_format
        self._train_x = pad_images(images.train_x[train].to(self._device), self._pad)
        self._train_y = images.train_y[train].to(self._device)
        self._eval = {"test": (images.test_x.to(self._device), images.test_y.to(self._device)),
                      "val": (images.train_x[val].to(self._device), images.train_y[val].to(self._device))}
        std_t = torch.tensor(std, dtype=torch.float32, device=self._device).view(1, c, 1, 1)
        self._scale = 1 / (255 * std_t)
        self._shift = -torch.tensor(mean, dtype=torch.float32, device=self._device).view(1, c, 1, 1) / std_t

    def _normalise(self, x: Tensor) -> Tensor:
        return torch.addcmul(self._shift, x.float(), self._scale).contiguous(memory_format=self._format)

    def epoch_plan(self, epoch: int) -> tuple[Tensor, Tensor, Tensor]:
        """(order, crop offsets, flips) of one epoch, drawn on the CPU from (seed, epoch) only."""
        gen, n = generator(self.seed, _EPOCH_STREAM, epoch), self.num_train
        order = torch.randperm(n, generator=gen)
        offsets = torch.randint(0, 2 * self._pad + 1, (n, 2), generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5 if self._augment else torch.zeros(n, dtype=torch.bool)
        return order.to(self._device), offsets.to(self._device), flips.to(self._device)

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        order, offsets, flips = self.epoch_plan(epoch)
        for step in range(self.steps_per_epoch(batch_size)):
            at = slice(step * batch_size, (step + 1) * batch_size)
            x = crop_flip(self._train_x, order[at], offsets[at], flips[at], self.image_size)
            yield self._normalise(x), self._train_y[order[at]]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        self._check_split(split)
        images, labels = self._eval[split]
        for start in range(0, len(labels), batch_size):
            x = images[start:start + batch_size].permute(0, 3, 1, 2)
            yield self._normalise(x), labels[start:start + batch_size]


# --- folder datasets (ImageNet, ImageFolder) -----------------------------------------------------

class _EpochSampler(Sampler):
    """Yields (index, sample seed) pairs in an order drawn from (seed, epoch); ``epoch`` is set per epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = generator(self.seed, _EPOCH_STREAM, self.epoch)
        order = torch.randperm(self.n, generator=gen)
        seeds = torch.randint(0, 2**62, (self.n,), generator=gen)
        return iter(zip(order.tolist(), seeds.tolist()))


class _SeededSamples(Dataset):
    """Applies each image's random transform under the seed the sampler gave it, so augmentation is
    independent of workers and resumption, and the caller's global RNG is left as it was."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, sample_seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.dataset[index]


def _image_folder(path: Path, transform) -> torchvision.datasets.ImageFolder:
    try:
        return torchvision.datasets.ImageFolder(str(path), transform=transform)
    except OSError as e:  # ImageFolder's "Couldn't find any class folder" and "Found no valid file"
        raise DataError(f"{path}: not an image folder with one sub-folder of images per class ({e})") from e


class FolderData(LoadedData):
    """An ImageFolder tree (``root/train``, ``root/val``) decoded and augmented by DataLoader workers."""

    def __init__(self, name: str, cfg: DataConfig, seed: int, device: torch.device | str,
                 channels_last: bool) -> None:
        root = cfg.data_dir or os.environ.get("ECASWEEP_DATA")
        if not root or not Path(root).is_dir():
            raise DataError(f"{name}: data root {'is not set' if not root else f'{root} is not a directory'}; set "
                            f"--data-dir or ECASWEEP_DATA to a directory with train/ and val/ class sub-folders")
        root = Path(root)
        normalise = transforms.Normalize(*IMAGENET_STATS)
        evaluate = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                       transforms.ToTensor(), normalise])
        augment = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                      transforms.ToTensor(), normalise]) if cfg.augment else evaluate
        train_full = _image_folder(root / "train", augment)
        test = _image_folder(root / "val", evaluate)
        if test.classes != train_full.classes:
            raise DataError(f"{root}: train/ and val/ have different class folders")
        train, val = split_indices(torch.tensor(train_full.targets), cfg.val_split, cfg.subset, seed)
        recipe = "RandomResizedCrop(224), RandomHorizontalFlip" if cfg.augment else "Resize(256), CenterCrop(224)"
        super().__init__(name, len(train_full.classes), 3, (224, 224), train.numel(), val.numel(), len(test),
                         str(root), f"{recipe}; eval Resize(256), CenterCrop(224); ImageNet mean/std")
        self._train = _SeededSamples(Subset(train_full, train.tolist()))
        self._eval = {"test": test}
        if self.has_val:  # a second scan of train/, only when it is needed
            self._eval["val"] = Subset(_image_folder(root / "train", evaluate), val.tolist())
        self._sampler = _EpochSampler(self.num_train, seed)
        self._device = torch.device(device)
        self._format = torch.channels_last if channels_last else torch.contiguous_format
        self._workers = cfg.num_workers
        self._loaders: dict[tuple[str, int], DataLoader] = {}

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        key = (split, batch_size)
        if key not in self._loaders:
            train = split == "train"
            self._loaders[key] = DataLoader(
                self._train if train else self._eval[split], batch_size=batch_size,
                sampler=self._sampler if train else None, drop_last=train and self.num_train >= batch_size,
                num_workers=self._workers, pin_memory=self._device.type == "cuda",
                persistent_workers=self._workers > 0,
                # Only seeds the workers (augmentation is seeded per image); keeps the global RNG untouched.
                generator=torch.Generator().manual_seed(0))
        return self._loaders[key]

    def _batches(self, loader: DataLoader) -> Iterator[tuple[Tensor, Tensor]]:
        non_blocking = loader.pin_memory
        for x, y in loader:
            x = x.to(self._device, non_blocking=non_blocking).contiguous(memory_format=self._format)
            yield x, y.to(self._device, non_blocking=non_blocking)

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        loader = self._loader("train", batch_size)
        self._sampler.epoch = epoch  # read when the loop below starts iterating the loader
        yield from self._batches(loader)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        self._check_split(split)
        return self._batches(self._loader(split, batch_size))


def load_dataset(cfg: DataConfig, seed: int, device: torch.device | str = "cpu",
                 channels_last: bool = True) -> LoadedData:
    """Find, read and place ``cfg.dataset`` on ``device``; see the module docstring for the recipes.

    Raises ``DataError`` when the data cannot be found or read, ``ConfigError`` when ``data.subset``
    or ``data.val_split`` asks for more images than there are.

    >>> data = load_dataset(DataConfig("synthetic", synthetic_size=512, subset=100), seed=1)
    >>> data.num_train, data.steps_per_epoch(32), data.describe()["source"]
    (100, 3, 'synthetic')
    """
    if cfg.dataset in ("imagenet", "imagefolder"):
        return FolderData(cfg.dataset, cfg, seed, device, channels_last)
    if cfg.dataset == "synthetic":
        images = _synthetic(cfg.synthetic_size)
        stats, classes = _channel_stats(images.train_x), _SYNTHETIC_CLASSES
    elif cfg.dataset == "fashion-mnist":
        images, stats, classes = _load_fashion_mnist(cfg), STATS["fashion-mnist"], 10
    else:
        images, stats = _load_cifar(cfg), STATS[cfg.dataset]
        classes = 10 if cfg.dataset == "cifar10" else 100
    return DeviceData(cfg.dataset, classes, images, cfg, seed, device, channels_last, stats)
