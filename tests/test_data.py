"""dlcourse.data: manifest, cache, checksums, corrupt/partial files, offline fallback, grading.

No test touches the network: downloads come from file:// URLs, and a guard fails any
test that opens a socket or a URL it was not meant to.
"""

import copy
import hashlib
import json
import socket
import struct
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcourse import data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """An empty cache, no grader, no offline switch, fresh messages, and no real network."""
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("DLCOURSE_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_announced", set())
    monkeypatch.setattr(data, "_network_cache", {})

    def no_socket(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    real_urlopen = urllib.request.urlopen

    def file_urls_only(url, *args, **kwargs):
        target = url if isinstance(url, str) else url.full_url
        if not target.startswith("file:"):
            raise OSError(f"network unreachable (test): {target}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", file_urls_only)


@pytest.fixture
def no_network_at_all(monkeypatch):
    """Fail the test if anything tries the network (or even a file:// URL)."""
    touched = []

    def forbidden(*args, **kwargs):
        touched.append(args)
        raise AssertionError(f"the network was touched: {args}")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    return touched


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


# ----------------------------------------------------------------------------- manifest


def test_manifest_describes_every_data_set():
    entries = data.manifest()
    for name in ("mnist", "fashion_mnist", "cifar10", "tiny_shakespeare", "mnist_offline", "names_corpus"):
        entry = entries[name]
        for key in ("source", "size", "license"):
            assert entry.get(key), f"{name} has no {key}"
        assert entry.get("sha256") or all(f.get("md5") for f in entry.get("files", [])), f"{name} has no checksum"
    assert entries["tiny_shakespeare"]["sha256"] == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert entries["tiny_shakespeare"]["size"] == 1115394


def test_manifest_md5s_agree_with_torchvision():
    import torchvision.datasets as tv

    entries = data.manifest()
    assert [(f["name"], f["md5"]) for f in entries["mnist"]["files"]] == [tuple(r) for r in tv.MNIST.resources]
    assert [(f["name"], f["md5"]) for f in entries["fashion_mnist"]["files"]] == [
        tuple(r) for r in tv.FashionMNIST.resources
    ]
    assert entries["cifar10"]["files"][0]["md5"] == tv.CIFAR10.tgz_md5


@pytest.mark.parametrize("name", ["mnist_offline", "names_corpus"])
def test_shipped_offline_files_match_their_checksums(name):
    entry = data.manifest()[name]
    path = data.package_data_dir() / entry["file"]
    assert path.stat().st_size == entry["size"]
    assert data.sha256_of(path) == entry["sha256"]
    assert path.stat().st_size < 2_000_000  # small enough to ship in the package


def test_data_files_are_found_in_the_checkout():
    assert data.package_data_dir() == REPO / "data"
    json.loads((REPO / "data" / "manifest.json").read_text())


# ----------------------------------------------------------------------------- cache location


def test_cache_location(monkeypatch, tmp_path):
    assert data.cache_location() == tmp_path / "cache"
    monkeypatch.delenv("DLCOURSE_DATA")
    assert data.cache_location() == REPO / "data" / "cache"  # git-ignored, in a checkout
    monkeypatch.setattr(data, "in_colab", lambda: True)
    assert data.cache_location() == Path("/content/dlcourse-data")
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "drive"))
    assert data.cache_location() == tmp_path / "drive"  # the override wins, e.g. a Drive folder


def test_data_cache_is_git_ignored():
    assert "data/cache/" in (REPO / ".gitignore").read_text()


# ----------------------------------------------------------------------------- downloads


@pytest.fixture
def served(tmp_path):
    """A 'remote' file behind a file:// URL, with its checksum and size."""
    payload = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50
    remote = tmp_path / "remote" / "input.txt"
    remote.parent.mkdir()
    remote.write_bytes(payload)
    return remote.as_uri(), payload


def test_download_verifies_and_caches(served, tmp_path):
    url, payload = served
    target = tmp_path / "cache" / "corpus.txt"
    data.download_file(url, target, sha256=sha256(payload), size=len(payload))
    assert target.read_bytes() == payload
    assert not target.with_name("corpus.txt.part").exists()


def test_checksum_mismatch_is_detected_and_nothing_is_kept(served, tmp_path):
    url, payload = served
    target = tmp_path / "cache" / "corpus.txt"
    with pytest.raises(data.DataError, match="does not verify"):
        data.download_file(url, target, sha256="0" * 64, size=len(payload))
    assert not target.exists()
    assert not target.with_name("corpus.txt.part").exists()


@pytest.mark.parametrize("damage", ["corrupt", "partial"])
def test_a_damaged_cached_file_is_replaced(served, tmp_path, capsys, damage):
    url, payload = served
    target = tmp_path / "cache" / "corpus.txt"
    target.parent.mkdir(parents=True)
    # corrupt: same size, different bytes (caught by sha256); partial: an interrupted download
    target.write_bytes(b"x" * len(payload) if damage == "corrupt" else payload[: len(payload) // 3])
    data.download_file(url, target, sha256=sha256(payload), size=len(payload))
    assert target.read_bytes() == payload
    assert "damaged" in capsys.readouterr().out


def test_a_failed_download_leaves_no_partial_file(tmp_path):
    target = tmp_path / "cache" / "corpus.txt"
    with pytest.raises(data.DataError, match="could not download"):
        data.download_file((tmp_path / "missing.txt").as_uri(), target, sha256="0" * 64)
    assert not target.exists() and not target.with_name("corpus.txt.part").exists()


@pytest.fixture
def shakespeare_served(served, monkeypatch):
    """Point the tiny_shakespeare manifest entry at the local file."""
    url, payload = served
    entries = copy.deepcopy(data.manifest())
    entries["tiny_shakespeare"].update(url=url, sha256=sha256(payload), size=len(payload))
    monkeypatch.setattr(data, "manifest", lambda: entries)
    return payload


def test_load_text_downloads_verifies_and_repairs_the_cache(shakespeare_served, tmp_path, capsys):
    text = data.load_text("tiny_shakespeare")
    assert text == shakespeare_served.decode()
    assert text.source == "full" and not data.is_offline_subset(text)
    cached = tmp_path / "cache" / "tiny_shakespeare" / "input.txt"
    cached.write_bytes(b"garbage")  # corrupt the cache
    assert data.load_text("tiny_shakespeare") == shakespeare_served.decode()
    assert "damaged" in capsys.readouterr().out
    assert cached.read_bytes() == shakespeare_served


def test_a_verified_cached_corpus_is_used_but_not_under_the_offline_switch(shakespeare_served, monkeypatch):
    data.load_text("tiny_shakespeare")  # downloads into the cache
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again"))
    assert data.load_text("tiny_shakespeare").source == "full"
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")  # one meaning: the grader's data, not the cache
    assert data.load_text("tiny_shakespeare").source == "offline-subset"
    monkeypatch.delenv("DLCOURSE_OFFLINE")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert data.load_text("tiny_shakespeare").source == "offline-subset"  # grading: always the same data


def test_load_text_with_a_bad_checksum_falls_back_with_a_message(shakespeare_served, monkeypatch, capsys):
    data.manifest()["tiny_shakespeare"]["sha256"] = "0" * 64
    text = data.load_text("tiny_shakespeare")
    assert text.source == "offline-subset"
    assert "does not verify" in capsys.readouterr().out


# ----------------------------------------------------------------------------- offline fallback


def test_offline_mnist_is_the_real_subset_with_one_message(capsys):
    train = data.load_mnist(train=True)
    test = data.load_mnist(train=False)
    out = capsys.readouterr().out
    assert out.count("dlcourse.data: MNIST") == 1  # one message for both splits
    assert "offline subset" in out and "4,000 train / 1,000 test" in out
    assert "network is unreachable" in out and "To get the full data" in out
    assert (len(train), len(test)) == (4000, 1000)
    assert train.source == "offline-subset" and data.is_offline_subset(train)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label <= 9
    images, labels = train.as_tensors()
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.99
    assert torch.bincount(labels).tolist() == [400] * 10
    assert torch.bincount(test.targets).tolist() == [100] * 10
    # real digits: the mean image of a class is far from the others (not noise)
    means = torch.stack([images[labels == c].mean(0).flatten() for c in range(10)])
    assert torch.cdist(means, means).fill_diagonal_(1e9).min() > 2.0


def test_offline_subset_loads_fast(monkeypatch):
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    data._offline_mnist_arrays.cache_clear()
    start = time.perf_counter()
    data.load_mnist(train=True)
    data.load_mnist(train=False)
    assert time.perf_counter() - start < 1.0


def test_offline_switch_skips_the_network(monkeypatch, no_network_at_all, capsys):
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    assert data.load_text().source == "offline-subset"
    assert data.load_mnist().source == "offline-subset"
    assert "$DLCOURSE_OFFLINE is set" in capsys.readouterr().out
    assert not no_network_at_all


def test_grading_never_touches_the_network(monkeypatch, no_network_at_all, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert data.load_mnist().source == "offline-subset"
    assert data.load_fashion_mnist(train=False).source == "offline-subset"
    assert data.load_cifar10().source == "synthetic"
    assert data.load_text("tiny_shakespeare").source == "offline-subset"
    assert not data.network_available()
    assert not no_network_at_all
    assert "being graded" in capsys.readouterr().out


def test_grading_uses_the_subset_even_with_a_full_copy_in_the_cache(monkeypatch, tmp_path, no_network_at_all):
    write_fake_mnist(tmp_path / "cache" / "MNIST" / "raw", n=20)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert data.load_mnist().source == "offline-subset"  # every grade sees the same data


def test_names_corpus_is_character_level_text(capsys):
    text = data.load_text("tiny_shakespeare")
    assert isinstance(text, str) and text.source == "offline-subset"
    assert "names corpus" in capsys.readouterr().out
    names = text.split()
    assert len(names) > 50_000
    assert set("".join(names)) <= set("abcdefghijklmnopqrstuvwxyz")
    assert data.load_text("names") == text


def test_text_keeps_its_source_through_pickle_and_copy():
    import pickle

    text = data.load_text("names")
    for clone in (pickle.loads(pickle.dumps(text)), copy.deepcopy(text)):
        assert clone == text and clone.source == "offline-subset" and clone.name == "names"


def test_editing_a_dataset_in_place_does_not_change_the_next_load():
    first = data.load_mnist()
    first.images.zero_()
    assert data.load_mnist().images.max() == 255


def test_unknown_corpus_names_the_known_ones():
    with pytest.raises(ValueError, match="tiny_shakespeare"):
        data.load_text("war_and_peace")


def test_fashion_mnist_offline_says_digits_stand_in(capsys):
    train = data.load_fashion_mnist()
    assert train.source == "offline-subset" and len(train) == 4000 and train[0][0].shape == (1, 28, 28)
    assert "digits, not clothes" in capsys.readouterr().out


def test_synthetic_cifar_is_cifar_shaped_deterministic_and_balanced(capsys):
    train = data.load_cifar10(train=True)
    test = data.load_cifar10(train=False)
    assert "synthetic" in capsys.readouterr().out
    assert train.source == "synthetic" and (len(train), len(test)) == (5000, 1000)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert torch.bincount(train.targets).tolist() == [500] * 10
    again = data.synthetic_cifar10(train=True)
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)
    assert not torch.equal(test.images[:100], train.images[:100])


def test_synthetic_cifar_is_learnable():
    """A nearest-class-mean classifier on pixels beats chance clearly (a CNN does far better)."""
    train_x, train_y = data.synthetic_cifar10(train=True, n=2000).as_tensors()
    test_x, test_y = data.synthetic_cifar10(train=False, n=500).as_tensors()
    gray = lambda x: x.mean(1).flatten(1)  # noqa: E731  (the colour is random; the shape is the class)
    means = torch.stack([gray(train_x[train_y == c]).mean(0) for c in range(10)])
    predicted = torch.cdist(gray(test_x), means).argmin(1)
    assert (predicted == test_y).float().mean() > 0.3


def test_hard_synthetic_cifar_is_a_deterministic_balanced_stand_in():
    train, test = data.synthetic_cifar10_hard(train=True), data.synthetic_cifar10_hard(train=False)
    assert (len(train), len(test)) == (1300, 1000)
    assert train.source == "synthetic" and data.is_offline_subset(train) and "synthetic" in repr(train)
    assert train.classes == data.SYNTHETIC_CIFAR_CLASSES
    assert train.images.shape == (1300, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(train.targets).tolist() == [130] * 10
    assert torch.bincount(test.targets).tolist() == [100] * 10
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    again = data.synthetic_cifar10_hard(train=True)
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)
    assert not torch.equal(test.images[:100], train.images[:100])
    other_seed = data.synthetic_cifar10_hard(train=True, n=100, seed=1)
    assert not torch.equal(other_seed.images, train.images[:100])


def test_hard_synthetic_cifar_is_harder_than_the_easy_one():
    """Pixel templates (nearest class mean) find the easy set's centred shapes, not the hard set's."""
    def template_accuracy(make):
        train_x, train_y = make(train=True, n=2000).as_tensors()
        test_x, test_y = make(train=False, n=500).as_tensors()
        gray = lambda x: x.mean(1).flatten(1)  # noqa: E731
        means = torch.stack([gray(train_x[train_y == c]).mean(0) for c in range(10)])
        return (torch.cdist(gray(test_x), means).argmin(1) == test_y).float().mean()

    assert template_accuracy(data.synthetic_cifar10) > 0.3
    assert template_accuracy(data.synthetic_cifar10_hard) < 0.2


def test_synthetic_shapes_keep_their_class_when_flipped_left_right():
    """02's project augments the stand-ins with left-right flips: a flipped shape must be the same class."""
    dy, dx = np.mgrid[-1.2:1.2:48j, -1.2:1.2:48j]  # no point on a cell edge (0, ±0.5, ±1)
    for label, name in enumerate(data.SYNTHETIC_CIFAR_CLASSES):
        mask, flipped = data._shape_mask(label, dy, dx), data._shape_mask(label, dy, -dx)
        if name == "checkerboard":  # the mirror image swaps the squares: still a checkerboard
            inside = (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
            assert np.array_equal(flipped, inside & ~mask), name
        else:
            assert np.array_equal(flipped, mask), name


def test_cifar_transform_gets_the_float_tensor():
    seen = []

    def transform(image):
        seen.append((image.dtype, tuple(image.shape)))
        return image.flip(-1)

    train = data.load_cifar10(train=True, transform=transform)
    flipped, _ = train[3]
    assert seen == [(torch.float32, (3, 32, 32))]
    assert torch.equal(flipped, train.as_tensors()[0][3].flip(-1))


def test_network_probe_is_remembered(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert not data.network_available("https://example.org/")
    assert not data.network_available("https://example.org/other")
    assert len(calls) == 1
    monkeypatch.setattr(data, "RETRY_AFTER_S", 0.0)  # a failure is remembered only briefly
    assert not data.network_available("https://example.org/")
    assert len(calls) == 2


# ----------------------------------------------------------------------------- full data from the cache


def write_fake_mnist(raw: Path, n: int) -> None:
    """MNIST's idx files (what torchvision reads) holding ``n`` tiny fake digits."""
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())


def test_full_mnist_from_the_cache_works_without_network(monkeypatch, tmp_path, no_network_at_all, capsys):
    write_fake_mnist(tmp_path / "cache" / "MNIST" / "raw", n=20)
    train = data.load_mnist()
    assert train.source == "full" and len(train) == 20
    image, label = train[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == 3
    assert capsys.readouterr().out == ""  # nothing to apologise for
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    assert data.load_mnist().source == "offline-subset", "the switch means the grader's data, not the cache"


def test_a_damaged_torchvision_cache_without_archives_or_network_says_both(monkeypatch, tmp_path, capsys):
    # (with the archives in the cache it repairs itself offline: tests/test_data_server.py)
    raw = tmp_path / "cache" / "MNIST" / "raw"
    write_fake_mnist(raw, n=20)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03 truncated")
    train = data.load_mnist()
    out = capsys.readouterr().out
    assert "damaged" in out and "offline subset" in out and "the network is unreachable" in out
    assert train.source == "offline-subset"


def test_data_source_rejects_foreign_objects():
    with pytest.raises(TypeError):
        data.data_source([1, 2, 3])
