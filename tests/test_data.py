"""advlab.io.data: real shared files, the embedded sample, other formats and every error path."""
from __future__ import annotations

import gzip
import pickle
import shutil
import struct

import numpy as np
import pytest

from advlab.io import data
from conftest import shared_datasets

SHARED = shared_datasets()
needs_shared = pytest.mark.skipif(SHARED is None, reason="real IDX files (../shared/datasets) not present")

# Published facts about the real files.
FIRST_LABELS = {
    ("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    ("mnist", "test"): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    ("fashion_mnist", "train"): [9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
    ("fashion_mnist", "test"): [9, 2, 1, 1, 6, 1, 4, 6, 5, 7],
}
CLASS_COUNTS = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion_mnist", "train"): [6000] * 10,
    ("fashion_mnist", "test"): [1000] * 10,
}


@needs_shared
@pytest.mark.parametrize("name,split", sorted(FIRST_LABELS))
def test_real_idx_files(name, split):
    x, y = data.load(name, split, data_dir=SHARED, source="local", verbose=False)
    n = 60000 if split == "train" else 10000
    assert x.shape == (n, 28, 28, 1) and y.shape == (n,)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert y[:10].tolist() == FIRST_LABELS[(name, split)]
    assert np.bincount(y, minlength=10).tolist() == CLASS_COUNTS[(name, split)]


@needs_shared
def test_env_var_and_limit(monkeypatch):
    monkeypatch.setenv("ADVLAB_DATA_DIR", str(SHARED))
    x, y, where = data.load("mnist", "test", limit=7, return_info=True, verbose=False)
    assert x.shape == (7, 28, 28, 1) and str(SHARED) in where["source"]


@needs_shared
@pytest.mark.parametrize("name,folder", [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist")])
def test_embedded_sample_is_real_stratified_and_small(name, folder):
    with np.load(data.SAMPLE_DIR / f"{name}.npz") as f:
        sample = {k: f[k] for k in f.files}
    for split, (img, lbl) in data._IDX_FILES.items():
        x_src = data.read_idx(SHARED / folder / img)
        y_src = data.read_idx(SHARED / folder / lbl)
        idx = sample[f"idx_{split}"]
        np.testing.assert_array_equal(sample[f"x_{split}"], x_src[idx])
        np.testing.assert_array_equal(sample[f"y_{split}"], y_src[idx])
        counts = np.bincount(sample[f"y_{split}"], minlength=10)
        assert len(set(counts.tolist())) == 1, counts  # stratified: equal per class
    x, y = data.load(name, "train", source="sample", verbose=False)
    assert x.shape == (2000, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    total = sum(p.stat().st_size for p in data.SAMPLE_DIR.glob("*.npz"))
    assert total < 3 * 2**20


def test_sample_provenance_recorded():
    import json

    prov = json.loads((data.SAMPLE_DIR / "PROVENANCE.json").read_text())
    assert set(prov["datasets"]) == {"mnist", "fashion_mnist"}
    assert prov["script"] == "scripts/make_sample.py"


def test_unknown_dataset_lists_known():
    with pytest.raises(ValueError, match=r"Unknown dataset 'svhn'.*cifar10.*fashion_mnist.*mnist"):
        data.load("svhn")


def test_bad_split_source_limit():
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "validation")
    with pytest.raises(ValueError, match="source"):
        data.load("mnist", source="internet")
    with pytest.raises(ValueError, match="limit"):
        data.load("mnist", source="sample", limit=0)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No ADVLAB_DATA_DIR, an empty Keras cache and a download that fails like it does offline."""
    monkeypatch.delenv("ADVLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    import keras

    def no_network(*a, **k):
        raise OSError("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    for mod in (keras.datasets.mnist, keras.datasets.fashion_mnist, keras.datasets.cifar10):
        monkeypatch.setattr(mod, "load_data", no_network)
    monkeypatch.setattr(data, "_candidate_dirs",
                        lambda ds, d: [p for p in _orig_candidates(ds, d) if "usr/share" not in str(p)])


_orig_candidates = data._candidate_dirs


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_dataset_offline_explains(offline, name):
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load(name, "test")
    msg = str(err.value)
    assert "Looked in" in msg and "ADVLAB_DATA_DIR" in msg and "keras.datasets" in msg
    assert "Temporary failure" in msg


def test_sample_not_available_for_cifar():
    with pytest.raises(data.DatasetUnavailable, match="No embedded sample"):
        data.load("cifar10", source="sample")


def _write_idx(path, arr):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_idx(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        img, lbl = data._IDX_FILES[split]
        _write_idx(folder / img, rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / lbl, rng.integers(0, 10, n))
    return folder


def test_idx_roundtrip(tiny_idx):
    x, y = data.load("mnist", "test", data_dir=tiny_idx.parent, source="local", verbose=False)
    assert x.shape == (5, 28, 28, 1)


def test_truncated_gz_is_clear_error(tiny_idx):
    path = tiny_idx / "t10k-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DatasetCorrupt, match="not a complete gzip file"):
        data.load("mnist", "test", data_dir=tiny_idx.parent, source="local", verbose=False)


def test_truncated_payload_and_bad_magic(tiny_idx):
    path = tiny_idx / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(data.DatasetCorrupt, match="truncated"):
        data.load("mnist", "test", data_dir=tiny_idx.parent, source="local", verbose=False)
    path.write_bytes(gzip.compress(b"\x1f\x8b\x08\x00" + raw[4:]))
    with pytest.raises(data.DatasetCorrupt, match="IDX"):
        data.load("mnist", "test", data_dir=tiny_idx.parent, source="local", verbose=False)


def test_keras_npz_cache(monkeypatch, tmp_path):
    home = tmp_path / "kh"
    (home / "datasets").mkdir(parents=True)
    rng = np.random.default_rng(1)
    np.savez(home / "datasets" / "mnist.npz", x_train=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
             y_train=np.arange(4), x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
             y_test=np.arange(3))
    monkeypatch.delenv("ADVLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(home))
    x, y, where = data.load("mnist", "test", source="local", return_info=True, verbose=False)
    assert x.shape == (3, 28, 28, 1) and "Keras cache" in where["source"]


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(2)
    images = {}
    for name, n in [(f"data_batch_{i}", 3) for i in range(1, 6)] + [("test_batch", 4)]:
        arr = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        images[name] = arr
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": arr, b"labels": list(rng.integers(0, 10, n))}, fh)
    x, y = data.load("cifar10", "test", data_dir=tmp_path, source="local", verbose=False)
    assert x.shape == (4, 32, 32, 3) and y.shape == (4,)
    # channel-major rows become NHWC: pixel (0, 0) of image 0 is bytes 0, 1024, 2048
    row = images["test_batch"][0]
    np.testing.assert_allclose(x[0, 0, 0] * 255, [row[0], row[1024], row[2048]], atol=1e-3)
    x_tr, _ = data.load("cifar10", "train", data_dir=tmp_path, source="local", verbose=False)
    assert x_tr.shape == (15, 32, 32, 3)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(data.DatasetCorrupt, match="CIFAR-10"):
        data.load("cifar10", "test", data_dir=tmp_path, source="local", verbose=False)


def test_imagenet_image_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for cls in ("n01440764", "n01443537"):
            (root / split / cls).mkdir(parents=True)
            for k in range(2):
                Image.fromarray(np.full((40, 50, 3), 30 * k, np.uint8)).save(root / split / cls / f"{k}.png")
    x, y = data.load("imagenet", "test", data_dir=tmp_path, source="local", image_size=32, verbose=False)
    assert x.shape == (4, 32, 32, 3) and sorted(y.tolist()) == [0, 0, 1, 1]
    shutil.rmtree(root / "val")
    with pytest.raises(data.DatasetUnavailable, match="imagenet"):
        data.load("imagenet", "test", data_dir=tmp_path, source="local")


def test_synthetic_standin_is_labelled(capsys):
    x, y = data.synthetic_standin("cifar10", n=8, seed=3)
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert "SYNTHETIC STAND-IN" in capsys.readouterr().out
