"""dlcourse.data against a local HTTP server: a stalled, a corrupt and a partial download, a mirror,
a loader called again after a failure, and the cache edge cases of the torchvision data sets.

The manifest entries point at the server (127.0.0.1); any other connection fails the test. MNIST
and CIFAR-10 are small fakes in the real file formats, with their checksums in the manifest (and,
for CIFAR-10, in torchvision's own list).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import pickle
import socket
import struct
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from dlcourse import data

STALL_S = 3.0  # how long the stalled route waits; the download timeout in these tests is 0.5 s


class Server:
    """Routes: path -> (behaviour, payload); counts the requests per path."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                behaviour, payload = server.routes.get(self.path, ("missing", b""))
                if behaviour == "missing":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if behaviour == "ok":
                    self.wfile.write(payload)
                elif behaviour == "corrupt":  # same length, other bytes
                    self.wfile.write(bytes(b ^ 0x55 for b in payload))
                elif behaviour == "partial":  # the connection drops half-way
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif behaviour == "stall":  # headers and a few bytes, then nothing
                    self.wfile.write(payload[:10])
                    self.wfile.flush()
                    time.sleep(STALL_S)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: str, payload: bytes, behaviour: str = "ok") -> str:
        self.routes[path] = (behaviour, payload)
        return self.url + path


@pytest.fixture
def server(monkeypatch, tmp_path):
    """The server, an empty cache, no offline switch, fresh session state, a short timeout, and no
    connection anywhere but 127.0.0.1."""
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "cache"))
    for name in ("NBGRADER_EXECUTION", "DLCOURSE_OFFLINE", "DLCOURSE_DATA_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(data, "_announced", set())
    monkeypatch.setattr(data, "_network_cache", {})
    monkeypatch.setattr(data, "_failed", {})
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 0.5)
    real = socket.create_connection

    def local_only(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost"):
            raise OSError(f"network unreachable (test): {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)
    running = Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


@pytest.fixture
def entries(monkeypatch):
    """A copy of the manifest the loaders read, for a test to point at the server."""
    copied = copy.deepcopy(data.manifest())
    monkeypatch.setattr(data, "manifest", lambda: copied)
    return copied


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CORPUS = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40


def shakespeare_at(entries, url: str) -> None:
    entries["tiny_shakespeare"].update(url=url, sha256=hashlib.sha256(CORPUS).hexdigest(), size=len(CORPUS))


# ----------------------------------------------------------------------------- one file: tiny Shakespeare


def test_a_good_download_is_verified_and_cached(server, entries, tmp_path):
    shakespeare_at(entries, server.serve("/input.txt", CORPUS))
    assert data.load_text("tiny_shakespeare") == CORPUS.decode()
    assert (tmp_path / "cache" / "tiny_shakespeare" / "input.txt").read_bytes() == CORPUS
    assert data.load_text("tiny_shakespeare").source == "full" and server.requests["/input.txt"] == 1


@pytest.mark.parametrize("behaviour, message", [
    ("stall", "the server sent nothing for 0.5 s"),
    ("corrupt", "does not verify: sha256"),
    ("partial", "expected 2,440 (partial or corrupt)"),
])
def test_a_stalled_corrupt_or_partial_download_falls_back_with_a_clear_message(server, entries, tmp_path, capsys,
                                                                                behaviour, message):
    shakespeare_at(entries, server.serve("/input.txt", CORPUS, behaviour))
    start = time.monotonic()
    text = data.load_text("tiny_shakespeare")
    assert time.monotonic() - start < STALL_S, "the timeout, not the server, ended the wait"
    out = capsys.readouterr().out
    assert text.source == "offline-subset"
    assert "dlcourse.data: text 'tiny_shakespeare': using the offline names corpus" in out and message in out, out
    assert "To get the full data" in out and "DLCOURSE_DATA_MIRROR" in out
    folder = tmp_path / "cache" / "tiny_shakespeare"
    assert not any(folder.glob("*")) if folder.exists() else True, "nothing partial is left in the cache"


def test_a_loader_called_again_tries_the_network_again(server, entries, monkeypatch, capsys):
    down = f"http://127.0.0.1:{free_port()}/input.txt"  # nothing listens there: the probe fails
    shakespeare_at(entries, down)
    assert data.load_text("tiny_shakespeare").source == "offline-subset"
    assert "the network is unreachable (no connection to 127.0.0.1)" in capsys.readouterr().out
    shakespeare_at(entries, server.serve("/input.txt", CORPUS))  # the network is back
    assert data.load_text("tiny_shakespeare").source == "offline-subset", "within RETRY_AFTER_S: no new wait"
    assert "/input.txt" not in server.requests
    monkeypatch.setattr(data, "RETRY_AFTER_S", 0.0)  # ... and after it
    assert data.load_text("tiny_shakespeare").source == "full"
    assert server.requests["/input.txt"] == 1


def test_a_mirror_is_tried_first_and_verified_like_any_source(server, entries, monkeypatch, tmp_path):
    shakespeare_at(entries, server.serve("/upstream/input.txt", CORPUS, "stall"))
    server.serve("/mirror/tiny_shakespeare/input.txt", CORPUS)
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", server.url + "/mirror/")
    assert data.file_urls("tiny_shakespeare", "input.txt")[0] == server.url + "/mirror/tiny_shakespeare/input.txt"
    assert data.load_text("tiny_shakespeare").source == "full"
    assert server.requests == {"/mirror/tiny_shakespeare/input.txt": 1}, "the pinned URL was not needed"


def test_a_corrupt_mirror_falls_back_to_the_manifest_url(server, entries, monkeypatch):
    shakespeare_at(entries, server.serve("/upstream/input.txt", CORPUS))
    server.serve("/mirror/tiny_shakespeare/input.txt", CORPUS, "corrupt")
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", server.url + "/mirror")
    assert data.load_text("tiny_shakespeare") == CORPUS.decode()
    assert server.requests == {"/mirror/tiny_shakespeare/input.txt": 1, "/upstream/input.txt": 1}


def test_a_mirror_can_be_a_folder(server, entries, monkeypatch, tmp_path):
    shakespeare_at(entries, f"http://127.0.0.1:{free_port()}/input.txt")
    folder = tmp_path / "shared-drive" / "tiny_shakespeare"
    folder.mkdir(parents=True)
    (folder / "input.txt").write_bytes(CORPUS)
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", str(tmp_path / "shared-drive"))
    assert data.load_text("tiny_shakespeare").source == "full"


# ----------------------------------------------------------------------------- MNIST and CIFAR-10 (torchvision)


def mnist_archives(n: int = 20) -> dict[str, bytes]:
    """MNIST's four .gz files, in the idx format torchvision reads, holding ``n`` fake digits."""
    rng = np.random.default_rng(0)
    files = {}
    for split, count in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        files[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes(), mtime=0)
        files[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(struct.pack(">II", 2049, count) + labels.tobytes(), mtime=0)
    return files


def point_at(entries, name: str, base: str, files: dict[str, bytes]) -> None:
    entries[name]["urls"] = [base]
    entries[name]["files"] = [{"name": k, "md5": hashlib.md5(v).hexdigest(), "size": len(v)} for k, v in files.items()]


def test_mnist_downloads_then_repairs_a_damaged_cache_offline_keeping_the_archives(server, entries, tmp_path, capsys):
    archives = mnist_archives()
    for name, payload in archives.items():
        server.serve(f"/mnist/{name}", payload)
    point_at(entries, "mnist", server.url + "/mnist/", archives)
    train = data.load_mnist()
    assert train.source == "full" and len(train) == 20 and train[3][1] == 3
    raw = tmp_path / "cache" / "MNIST" / "raw"
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03 truncated")
    server.routes.clear()  # the network is gone
    assert data.load_mnist().source == "full", "unpacked again from the archives, no network needed"
    assert "damaged" in capsys.readouterr().out
    assert sorted(p.name for p in raw.glob("*.gz")) == sorted(archives)
    assert sum(server.requests.values()) == 4, "each archive downloaded once"


def test_the_offline_switch_means_the_shipped_data_even_with_a_full_cache(server, entries, monkeypatch, capsys):
    archives = mnist_archives()
    for name, payload in archives.items():
        server.serve(f"/mnist/{name}", payload)
    point_at(entries, "mnist", server.url + "/mnist/", archives)
    assert data.load_mnist().source == "full"
    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    assert data.load_mnist().source == "offline-subset"
    assert "$DLCOURSE_OFFLINE is set" in capsys.readouterr().out
    monkeypatch.delenv("DLCOURSE_OFFLINE")
    server.routes.clear()
    assert data.load_mnist().source == "full", "without the switch the cache serves with no network"


def cifar_archive(monkeypatch, n: int = 10) -> bytes:
    """A CIFAR-10 archive in the real layout, with torchvision's md5 list set to its batches."""
    import torchvision.datasets as tv

    rng = np.random.default_rng(0)
    members = {}
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        members[batch] = pickle.dumps({"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                                       "labels": [i % 10 for i in range(n)]})
    members["batches.meta"] = pickle.dumps({"label_names": [f"class{i}" for i in range(10)]})
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in members.items()}
    monkeypatch.setattr(tv.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tv.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tv.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]})
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return packed.getvalue()


def test_a_corrupt_cifar_download_is_fetched_once_for_both_splits(server, entries, monkeypatch, capsys):
    archive = cifar_archive(monkeypatch)
    url = server.serve("/cifar-10-python.tar.gz", archive, "corrupt")
    entries["cifar10"]["urls"] = [url]
    entries["cifar10"]["files"] = [{"name": "cifar-10-python.tar.gz", "md5": hashlib.md5(archive).hexdigest(),
                                    "size": len(archive)}]
    assert data.load_cifar10(train=True).source == "synthetic"
    assert data.load_cifar10(train=False).source == "synthetic"
    out = capsys.readouterr().out
    assert server.requests["/cifar-10-python.tar.gz"] == 1
    assert out.count("dlcourse.data: CIFAR-10") == 1 and "does not verify: md5" in out


def test_cifar_with_a_valid_archive_and_damaged_files_is_unpacked_again(server, entries, monkeypatch, tmp_path, capsys):
    archive = cifar_archive(monkeypatch)
    server.serve("/cifar-10-python.tar.gz", archive)
    entries["cifar10"]["urls"] = [server.url + "/cifar-10-python.tar.gz"]
    entries["cifar10"]["files"] = [{"name": "cifar-10-python.tar.gz", "md5": hashlib.md5(archive).hexdigest(),
                                    "size": len(archive)}]
    assert len(data.load_cifar10(train=False)) == 10
    (tmp_path / "cache" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"damaged")
    server.routes.clear()  # offline from here
    train = data.load_cifar10(train=True)
    assert train.source == "full" and len(train) == 50 and train.classes[1] == "class1"
    assert "damaged" in capsys.readouterr().out
    assert server.requests == {"/cifar-10-python.tar.gz": 1}
