"""Tests of ecasweep.engine.data: loading, splits, device augmentation, determinism, and the errors users see."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ecasweep.engine import data as D
from ecasweep.engine.config import DataConfig
from ecasweep.errors import ConfigError, DataError


def synthetic(seed: int = 0, **kwargs) -> D.LoadedData:
    return D.load_dataset(DataConfig("synthetic", **{"synthetic_size": 400, **kwargs}), seed=seed)


def all_train(data: D.LoadedData, epoch: int = 0, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*data.train_batches(epoch, batch_size))
    return torch.cat(xs), torch.cat(ys)


@pytest.fixture
def no_data_anywhere(tmp_path, monkeypatch):
    """Every place the loaders look is empty, and torchvision's downloads fail as without a network."""
    def offline(self):
        raise RuntimeError("no network (test)")

    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", str(tmp_path / "debian"))
    monkeypatch.setenv("ECASWEEP_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    return tmp_path


# --- synthetic data, batches, normalisation ------------------------------------------------------

def test_synthetic_batches_have_the_promised_shapes_dtypes_and_sizes():
    data = synthetic(subset=100)
    assert (data.name, data.num_classes, data.in_channels, data.image_size) == ("synthetic", 10, 3, (16, 16))
    assert data.num_train == 100 and not data.has_val
    batches = list(data.train_batches(0, 32))
    assert len(batches) == data.steps_per_epoch(32) == 3  # the last 4 images are dropped
    for x, y in batches:
        assert x.shape == (32, 3, 16, 16) and x.dtype == torch.float32
        assert y.shape == (32,) and y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < 10
    assert data.describe() == {"name": "synthetic", "train": 100, "val": 0, "test": 100, "num_classes": 10,
                               "image_size": [16, 16], "source": "synthetic",
                               "augmentation": data.augmentation}
    assert "random crop 16x16 from zero padding 2, horizontal flip" in data.augmentation


def test_a_training_split_smaller_than_a_batch_gives_one_batch_of_all_of_it():
    data = synthetic(subset=20)
    (x, y), = list(data.train_batches(0, 128))
    assert len(y) == 20 and data.steps_per_epoch(128) == 1


def test_unaugmented_training_images_are_normalised_to_zero_mean_unit_std():
    x, _ = all_train(synthetic(augment=False), batch_size=400)
    assert x.mean((0, 2, 3)).abs().max() < 1e-4
    assert (x.std((0, 2, 3)) - 1).abs().max() < 1e-3


def test_eval_batches_cover_the_split_in_order_without_augmentation():
    data = synthetic(val_split=40)
    for split, sizes in (("test", [32, 32, 32, 4]), ("val", [32, 8])):
        first = list(data.eval_batches(split, 32))
        assert [len(y) for _, y in first] == sizes  # the last, short batch is kept
        again = list(data.eval_batches(split, 64))
        assert torch.equal(torch.cat([x for x, _ in first]), torch.cat([x for x, _ in again]))
    with pytest.raises(ValueError, match="no validation split"):
        next(synthetic().eval_batches("val", 8))
    with pytest.raises(ValueError, match="test, val"):
        next(data.eval_batches("train", 8))


def test_channels_last_is_honoured_for_train_and_eval_batches():
    for channels_last in (True, False):
        data = D.load_dataset(DataConfig("synthetic", synthetic_size=64), seed=0, channels_last=channels_last)
        for x, _ in (next(data.train_batches(0, 16)), next(data.eval_batches("test", 16))):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            assert x.is_contiguous(memory_format=fmt)


def test_a_small_cnn_learns_the_synthetic_data_well_above_chance():
    data = D.load_dataset(DataConfig("synthetic", synthetic_size=1024), seed=0, channels_last=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2),
                              nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(3):
        for x, y in data.train_batches(epoch, 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data.eval_batches("test", 256))
    assert correct / data.num_test > 0.5


# --- determinism ------------------------------------------------------------------------------------

def test_same_seed_and_epoch_give_identical_batches_across_loads():
    a, b = synthetic(seed=3, subset=200), synthetic(seed=3, subset=200)
    for epoch in (0, 5):
        xa, ya = all_train(a, epoch)
        xb, yb = all_train(b, epoch)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_epochs_and_seeds_change_the_order_and_the_subset():
    data = synthetic(seed=0, subset=200)
    x0, y0 = all_train(data, 0)
    x1, y1 = all_train(data, 1)
    assert not torch.equal(y0, y1) and not torch.equal(x0, x1)
    train0, _ = D.split_indices(D._synthetic(400).train_y, 0, 200, seed=0)
    train1, _ = D.split_indices(D._synthetic(400).train_y, 0, 200, seed=1)
    assert not torch.equal(train0, train1)
    assert not torch.equal(all_train(synthetic(seed=1, subset=200), 0)[1], y0)


def test_loading_and_batching_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    data = D.load_dataset(DataConfig("synthetic", synthetic_size=4000, val_split=100, subset=500), seed=7)
    all_train(data, 2)
    list(data.eval_batches("val", 50))
    assert torch.equal(torch.get_rng_state(), state)


def test_generator_depends_only_on_its_arguments():
    draw = lambda *args: torch.randint(0, 2**31, (4,), generator=D.generator(*args))  # noqa: E731
    assert torch.equal(draw(1, 1, 3), draw(1, 1, 3))
    assert len({tuple(draw(*a).tolist()) for a in ((1, 1, 3), (1, 1, 4), (2, 1, 3), (1, 0, 3))}) == 4


# --- stratified splits --------------------------------------------------------------------------------

def test_subset_and_val_split_are_stratified_and_disjoint():
    labels = torch.arange(3000) % 10
    train, val = D.split_indices(labels, val_split=95, subset=503, seed=4)
    assert len(val) == 95 and len(train) == 503
    assert not set(train.tolist()) & set(val.tolist())
    for chosen in (train, val):
        counts = torch.bincount(labels[chosen], minlength=10)
        assert int(counts.max() - counts.min()) <= 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.data())
def test_stratified_pick_is_as_balanced_as_the_classes_allow(labels, draw):
    labels = torch.tensor(labels)
    k = draw.draw(st.integers(0, len(labels)))
    chosen = D.stratified_pick(labels, k, torch.Generator().manual_seed(0))
    assert len(chosen) == k == len(set(chosen.tolist()))
    available = torch.bincount(labels, minlength=5)
    counts = torch.bincount(labels[chosen], minlength=5)
    short = counts < available  # a class with images left must not be more than one behind any other
    if short.any():
        assert int(counts.max()) - int(counts[short].min()) <= 1


def test_asking_for_more_images_than_there_are_names_the_field():
    with pytest.raises(ConfigError, match="data.subset.*400 are available"):
        synthetic(subset=401)
    with pytest.raises(ConfigError, match="data.subset.*300 are available"):
        synthetic(subset=301, val_split=100)
    with pytest.raises(ConfigError, match="data.val_split"):
        synthetic(val_split=400)


# --- crop and flip ------------------------------------------------------------------------------------

def test_crop_without_offset_or_flip_keeps_the_image_and_flip_mirrors_it():
    x = torch.randint(0, 256, (5, 6, 7, 3), dtype=torch.uint8)  # NHWC
    index, none = torch.arange(5), torch.zeros(5, dtype=torch.bool)
    nchw = x.permute(0, 3, 1, 2)
    assert torch.equal(D.crop_flip(x, index, torch.zeros(5, 2, dtype=torch.long), none, (6, 7)), nchw)
    padded = D.pad_images(x, 3)
    centre = torch.full((5, 2), 3)
    assert torch.equal(D.crop_flip(padded, index, centre, none, (6, 7)), nchw)
    assert torch.equal(D.crop_flip(padded, index, centre, ~none, (6, 7)), nchw.flip(-1))
    corner = D.crop_flip(padded, index, torch.zeros(5, 2, dtype=torch.long), none, (6, 7))
    assert torch.equal(corner[:, :, 3:, 3:], nchw[:, :, :3, :4]) and int(corner[:, :, :3].max()) == 0


def test_crop_flip_matches_a_per_image_reference_for_random_offsets():
    gen = torch.Generator().manual_seed(0)
    padded = torch.randint(0, 256, (20, 12, 13, 2), dtype=torch.uint8, generator=gen)
    index = torch.randint(0, 20, (9,), generator=gen)
    offsets = torch.stack([torch.randint(0, 5, (9,), generator=gen), torch.randint(0, 6, (9,), generator=gen)], 1)
    flips = torch.rand(9, generator=gen) < 0.5
    out = D.crop_flip(padded, index, offsets, flips, (8, 8))
    assert out.shape == (9, 2, 8, 8) and out.is_contiguous(memory_format=torch.channels_last)
    for b in range(9):
        (r, c), image = offsets[b].tolist(), padded[index[b]].permute(2, 0, 1)
        window = image[:, r:r + 8, c:c + 8]
        assert torch.equal(out[b], window.flip(-1) if flips[b] else window)


# --- IDX files and Fashion-MNIST --------------------------------------------------------------------

def write_idx(path: Path, array: torch.Tensor, gz: bool = False, raw: bytes | None = None) -> Path:
    header = bytes([0, 0, 0x08, array.dim()]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    payload = raw if raw is not None else header + array.numpy().tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_reads_raw_and_gzipped_files(tmp_path, gz):
    images = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    labels = torch.tensor([0, 9, 3], dtype=torch.uint8)
    assert torch.equal(D.read_idx(write_idx(tmp_path / "images", images, gz)), images)
    assert torch.equal(D.read_idx(write_idx(tmp_path / "labels", labels, gz)), labels)


def test_read_idx_names_the_file_and_the_problem(tmp_path):
    images = torch.zeros(3, 4, 5, dtype=torch.uint8)
    good = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (3, 4, 5)) + bytes(60)
    cases = {"short": (good[:-7], "truncated"), "long": (good + b"x", "trailing bytes"),
             "magic": (b"\x12\x34" + good[2:], "not an IDX file"), "type": (good[:2] + b"\x0d" + good[3:], "0x0d"),
             "header": (good[:9], "truncated IDX header"), "empty": (b"", "magic number missing")}
    for name, (raw, problem) in cases.items():
        path = write_idx(tmp_path / name, images, raw=raw)
        with pytest.raises(DataError, match=f"{path}.*{problem}"):
            D.read_idx(path)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(good)[:30])
    with pytest.raises(DataError, match=f"{cut}.*gzip"):
        D.read_idx(cut)
    with pytest.raises(DataError, match="cannot read"):
        D.read_idx(tmp_path / "absent")


def test_idx_files_are_found_directly_or_in_torchvision_layout(tmp_path):
    names = list(D.FASHION_MNIST_FILES)
    for name in names[:2]:
        (tmp_path / f"{name}.gz").touch()
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in names:
        (raw / name).touch()
    assert D.find_idx_files(tmp_path) == {name: raw / name for name in names}
    assert set(D.find_idx_files(tmp_path / "nowhere")) == set()


def test_fashion_mnist_files_of_the_wrong_size_are_rejected_naming_the_file(tmp_path, no_data_anywhere):
    for name, shape in D.FASHION_MNIST_FILES.items():
        write_idx(tmp_path / f"{name}.gz", torch.zeros((2,) + shape[1:], dtype=torch.uint8), gz=True)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: expected shape \\(60000, 28, 28\\)"):
        D.load_dataset(DataConfig("fashion-mnist", data_dir=str(tmp_path)), seed=0)


def test_missing_fashion_mnist_lists_every_place_and_both_remedies(no_data_anywhere):
    tmp = no_data_anywhere
    with pytest.raises(DataError) as info:
        D.load_dataset(DataConfig("fashion-mnist"), seed=0)
    message = str(info.value)
    for place in ("env", "debian", "cache/ecasweep/data"):
        assert str(tmp / place) in message
    assert "download into" in message and "no network (test)" in message
    assert "apt-get install dataset-fashion-mnist" in message and "ECASWEEP_DATA" in message
    assert "\n" not in message


def test_real_fashion_mnist_loads_from_the_debian_location(fashion_mnist_dir):
    directory = fashion_mnist_dir
    data = D.load_dataset(DataConfig("fashion-mnist", val_split=1000, subset=5000), seed=0)
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, (28, 28))
    assert data.describe()["source"] == str(directory)
    assert (data.num_train, data.num_val, data.num_test) == (5000, 1000, 10000)
    full = D.load_dataset(DataConfig("fashion-mnist"), seed=0)
    assert full.num_train == 60000 and D._read_fashion_mnist.cache_info().hits >= 1
    x, y = next(full.eval_batches("test", 10000))
    assert x.shape == (10000, 1, 28, 28) and torch.equal(torch.bincount(y), torch.full((10,), 1000))
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
@pytest.mark.parametrize("given", ["absent", "empty", "file"])
def test_a_given_data_dir_without_the_data_is_an_error_not_a_fallback(tmp_path, dataset, given):
    # Fashion-MNIST is installed (or a download would be tried): a given directory is still the only place.
    path = tmp_path / given
    if given == "empty":
        path.mkdir()
    elif given == "file":
        path.write_text("not a directory")
    state = {"absent": "does not exist", "empty": "does not hold", "file": "is not a directory"}[given]
    with pytest.raises(DataError, match=f"data directory {path} .*{state}"):
        D.load_dataset(DataConfig(dataset, data_dir=str(path)), seed=0)


# --- CIFAR ----------------------------------------------------------------------------------------

def test_missing_cifar_names_the_places_and_how_to_get_it(no_data_anywhere):
    with pytest.raises(DataError, match="cifar10 not found.*env.*cache.*no network.*cifar-10-python.tar.gz"):
        D.load_dataset(DataConfig("cifar10"), seed=0)


def test_corrupt_cifar_is_a_data_error(tmp_path, no_data_anywhere):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cifar-10-batches-py.*corrupt"):
        D.load_dataset(DataConfig("cifar10", data_dir=str(folder)), seed=0)


# --- ImageFolder ------------------------------------------------------------------------------------

@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split, per_class in (("train", 4), ("val", 2)):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(per_class):
                pixels = torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8, generator=gen).numpy()
                Image.fromarray(pixels).save(tmp_path / split / label / f"{i}.png")
    return tmp_path


def test_image_folder_yields_224_batches_deterministically(image_folder):
    cfg = DataConfig("imagefolder", data_dir=str(image_folder), num_workers=0)
    state = torch.get_rng_state()
    data = D.load_dataset(cfg, seed=0)
    assert (data.num_classes, data.num_train, data.num_test, data.image_size) == (2, 8, 4, (224, 224))
    batches = list(data.train_batches(0, 3))
    assert len(batches) == data.steps_per_epoch(3) == 2
    x, y = batches[0]
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    again = list(D.load_dataset(cfg, seed=0).train_batches(0, 3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert not torch.equal(next(data.train_batches(1, 3))[0], x)
    test = list(data.eval_batches("test", 3))
    assert [len(y) for _, y in test] == [3, 1] and test[0][0].shape == (3, 3, 224, 224)
    assert torch.equal(torch.get_rng_state(), state)


def test_image_folder_augmentation_does_not_depend_on_the_worker_count(image_folder):
    def first(workers: int) -> torch.Tensor:
        cfg = DataConfig("imagefolder", data_dir=str(image_folder), num_workers=workers, val_split=2)
        return next(D.load_dataset(cfg, seed=5).train_batches(2, 4))[0]

    assert torch.equal(first(0), first(1))


def test_image_folder_without_classes_or_root_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ECASWEEP_DATA", raising=False)
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="train: not an image folder"):
        D.load_dataset(DataConfig("imagefolder", data_dir=str(tmp_path)), seed=0)
    with pytest.raises(DataError, match="not a directory"):
        D.load_dataset(DataConfig("imagenet", data_dir=str(tmp_path / "absent")), seed=0)
    with pytest.raises(DataError, match="not set"):
        D.load_dataset(DataConfig("imagenet"), seed=0)
