"""Safe loading: CIFAR-10 pickles through a restricted unpickler, model files with Keras' safe
mode, and every kind of damaged file reported as such (naming the file and how to rebuild it)."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advlab.io import data
from advlab.io.models import ModelFileCorrupt, check_model_file, load_model
from bad_inputs import record


class _Exploit:
    """A pickle whose loading would create ``target`` (``__reduce__`` calls ``os.system``)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def _write_cifar(folder: Path, batch, names=("test_batch",)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        with (folder / name).open("wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return folder


def _fake_batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"testing batch 1 of 1",
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def test_malicious_cifar_pickle_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    batch = _fake_batch()
    batch[b"labels"] = _Exploit(target)
    folder = _write_cifar(tmp_path / "cifar-10-batches-py", batch)
    with pytest.raises(data.UnsafePickle, match=r"test_batch asks to load posix\.system") as err:
        data.load("cifar10", "test", source="local", data_dir=tmp_path, verbose=False)
    record("a CIFAR-10 batch whose pickle calls os.system", err.value, call='data.load("cifar10")')
    assert not target.exists(), "the pickle's payload ran"
    # the refusal is a DatasetCorrupt (a ValueError): callers handling bad files handle it too
    assert isinstance(err.value, data.DatasetCorrupt) and isinstance(err.value, ValueError)
    assert str(folder / "test_batch") in str(err.value)


def test_well_formed_cifar_batches_still_load(tmp_path):
    batch = _fake_batch(n=6)
    _write_cifar(tmp_path / "cifar-10-batches-py", batch)
    x, y = data.load("cifar10", "test", source="local", data_dir=tmp_path, verbose=False)
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, batch[b"labels"])
    # channel-first rows -> NHWC: pixel (0, 0) of image 0 is data[0, 0], data[0, 1024], data[0, 2048]
    np.testing.assert_allclose(x[0, 0, 0] * 255, batch[b"data"][0, [0, 1024, 2048]], atol=1e-4)
    # a batch re-saved with the newest protocol (numpy's _frombuffer path) loads as well
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as fh:
        pickle.dump(batch, fh, protocol=5)
    x5, _ = data.load("cifar10", "test", source="local", data_dir=tmp_path, verbose=False)
    np.testing.assert_array_equal(x5, x)


def test_non_pickle_cifar_file_is_corrupt(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(U\x04da")      # a truncated pickle
    with pytest.raises(data.DatasetCorrupt, match="is not a CIFAR-10 python batch") as err:
        data.load("cifar10", "test", source="local", data_dir=tmp_path, verbose=False)
    record("a truncated CIFAR-10 batch", err.value, call='data.load("cifar10")')


# ------------------------------------------------------------------------------------ model files
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("models")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tiny")
    path = folder / "ok.keras"
    model.save(path)
    return model, path


def _bad_files(folder: Path, good: Path) -> dict[str, Path]:
    raw = good.read_bytes()
    files = {"an empty .keras file": folder / "empty.keras",
             "a truncated .keras file (first half)": folder / "truncated.keras",
             "a corrupt .keras file (not a zip)": folder / "corrupt.keras",
             "a zip that is not a Keras archive": folder / "foreign.keras",
             "a .keras archive with damaged weights": folder / "damaged.keras"}
    files["an empty .keras file"].write_bytes(b"")
    files["a truncated .keras file (first half)"].write_bytes(raw[:len(raw) // 2])
    files["a corrupt .keras file (not a zip)"].write_bytes(b"this is not a model\n" * 50)
    with zipfile.ZipFile(files["a zip that is not a Keras archive"], "w") as z:
        z.writestr("notes.txt", "holiday pictures")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(files["a .keras archive with damaged weights"], "w") as dst:
        for name in src.namelist():
            dst.writestr(name, b"garbage" if name.endswith(".h5") else src.read(name))
    return files


EXPECTED = {"an empty .keras file": "is empty", "a truncated .keras file (first half)": "truncated or corrupt",
            "a corrupt .keras file (not a zip)": "truncated or corrupt",
            "a zip that is not a Keras archive": "not a Keras model",
            "a .keras archive with damaged weights": "Could not load"}


def test_every_bad_model_file_is_named_with_how_to_rebuild(saved_model, tmp_path):
    for what, path in _bad_files(tmp_path, saved_model[1]).items():
        with pytest.raises(ModelFileCorrupt, match=EXPECTED[what]) as err:
            load_model(path, what="purifier", rebuild="Train one with `python -m advlab train --out DIR`.")
        message = str(err.value)
        assert str(path) in message and "python -m advlab train" in message, message
        assert "File not found" not in message       # Keras' misleading wording for a file that exists
    with pytest.raises(FileNotFoundError, match="No purifier file at .*missing.keras. Train one"):
        load_model(tmp_path / "missing.keras", what="purifier", rebuild="Train one.")


def test_good_model_loads_in_safe_mode_and_lambda_is_refused(saved_model, tmp_path):
    import keras

    model, path = saved_model
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(np.asarray(load_model(path)(x)), np.asarray(model(x)), atol=1e-6)
    assert check_model_file(path) == path
    unsafe = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0)])
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileCorrupt, match="safe_mode"):
        load_model(tmp_path / "lambda.keras", what="classifier")


def test_purifier_and_classifier_loaders_report_bad_files(saved_model, tmp_path):
    from advlab import classifiers
    from advlab.purifiers import residual_cgan

    files = _bad_files(tmp_path, saved_model[1])
    run = tmp_path / "run"
    run.mkdir()
    for what, bad in files.items():
        (run / "generator.keras").write_bytes(bad.read_bytes())
        with pytest.raises(ModelFileCorrupt, match=EXPECTED[what]) as err:
            residual_cgan.load_purifier(run)
        assert f"python -m advlab train ... --out {run}" in str(err.value)
        record(f"generator.keras: {what}", err.value, call="residual_cgan.load_purifier(run)")
        with pytest.raises(classifiers.CheckpointMismatch, match=EXPECTED[what]):
            classifiers.load_classifier(bad)
    (run / "generator.keras").unlink()
    with pytest.raises(FileNotFoundError, match="advlab train") as err:
        residual_cgan.load_purifier(run)
    record("no generator.keras in the run folder", err.value, call="residual_cgan.load_purifier(run)")
