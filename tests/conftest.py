"""Shared fixtures. Every test runs with figures/cache redirected to a temporary folder and the
current directory set to an empty temporary folder, so a test also proves nothing is written
to the current directory (see ``test_no_writes_to_cwd`` fixtures below). The one exception is
the notebook kernels of ``test_exercises.py``: they cache where ``--nbmake notebooks`` will look
(``$ADVLAB_CACHE_DIR``, else the checkout's gitignored ``.cache``), so whichever of the two runs a
notebook first (``make test`` runs two pytest-xdist workers) builds its models once, under the
cache's file locks, and the other loads them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_datasets() -> Path | None:
    """The real IDX files for tests: $ADVLAB_DATA_DIR or ../shared/datasets, if present."""
    env = os.environ.get("ADVLAB_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [SHARED]:
        if (cand / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("advlab_session")


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch, session_tmp):
    """Send figures to a per-test folder, share one cache per session, run in an empty cwd."""
    figs = tmp_path / "figures"
    monkeypatch.setenv("ADVLAB_FIGURES_DIR", str(figs))
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(session_tmp / "cache"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    leaked = sorted(p.name for p in cwd.iterdir())
    assert not leaked, f"test wrote into the current directory: {leaked}"


@pytest.fixture(scope="session")
def mnist_sample():
    """(x_train, y_train, x_test, y_test) from the embedded real MNIST sample (2000/1000)."""
    from advlab.io import data

    x_tr, y_tr = data.load("mnist", "train", source="sample", verbose=False)
    x_te, y_te = data.load("mnist", "test", source="sample", verbose=False)
    return x_tr, y_tr, x_te, y_te


@pytest.fixture(scope="session")
def mnist_cnn(mnist_sample):
    """A small MNIST CNN (advlab.classifiers 'mnist_cnn') trained once per session on the
    embedded sample (2000 images, 5 epochs, ~10 s on 2 cores); >= 90% on the sample test split."""
    from advlab import classifiers

    x_tr, y_tr, x_te, y_te = mnist_sample
    model = classifiers.build_classifier("mnist_cnn")
    classifiers.train_classifier(model, x_tr, y_tr, epochs=5, batch_size=64, verbose=0, seed=0)
    acc = classifiers.accuracy(model, x_te, y_te)
    assert acc >= 0.90, f"mnist_cnn fixture trained to only {acc:.1%}"
    return model


def pytest_sessionfinish(session):
    """Save the bad-input rows the tests recorded (tests/bad_inputs.py renders them into README.md)."""
    import bad_inputs

    bad_inputs.save()
