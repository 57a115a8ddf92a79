"""Same seed, same machine: bitwise-equal adversarial sets and the same numbers from a training
run; the determinism switch (``set_seed(..., deterministic=True)`` / ``ADVLAB_DETERMINISTIC``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advlab import attacks
from advlab.io import seeding

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model():
    """A small untrained conv net on 28x28x1 logits: enough gradient for every attack."""
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)], name="tiny")


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (12, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 12)


@pytest.mark.parametrize("name,params", [("fgsm", {"eps": 0.1}),
                                         ("pgd", {"eps": 0.1, "eps_iter": 0.03, "nb_iter": 3, "rand_init": True}),
                                         ("mifgsm", {"eps": 0.1, "eps_iter": 0.03, "nb_iter": 3})])
def test_same_seed_gives_bitwise_equal_adversarial_sets(tiny_model, batch, name, params):
    x, y = batch
    runs = [attacks.attack(name, tiny_model, x, y, seed=7, batch_size=5, progress=False, **params) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(runs[0] - x).max() > 0                      # the attack did something
    if name == "pgd":                                        # the random start really depends on the seed
        other = attacks.attack(name, tiny_model, x, y, seed=8, batch_size=5, progress=False, **params)
        assert not np.array_equal(other, runs[0])


def test_set_seed_repeats_keras_initialisation():
    import keras

    def weights():
        seeding.set_seed(11)
        return keras.layers.Dense(3).add_weight(shape=(4, 3), initializer="glorot_uniform").numpy()

    np.testing.assert_array_equal(weights(), weights())
    for bad in (-1, 1.5, True, 2**32):
        with pytest.raises(ValueError, match="seed must be an integer"):
            seeding.set_seed(bad)


def test_deterministic_switch_parses_env(monkeypatch):
    for value, expected in (("", False), ("0", False), ("off", False), ("1", True), ("TRUE", True), ("on", True)):
        monkeypatch.setenv(seeding.DETERMINISTIC_ENV, value)
        assert seeding.deterministic_requested() is expected
    monkeypatch.setenv(seeding.DETERMINISTIC_ENV, "maybe")
    with pytest.raises(ValueError, match="ADVLAB_DETERMINISTIC='maybe' is not a switch"):
        seeding.deterministic_requested()


def _python(code: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=env["ADVLAB_TEST_CWD"], env=env, text=True,
                          capture_output=True, timeout=timeout)


def _env(tmp_path: Path, **extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "ADVLAB_TEST_CWD": str(tmp_path)}
    env.pop(seeding.DETERMINISTIC_ENV, None)
    env.update(extra)
    return env


def test_switch_turns_on_tf_op_determinism(tmp_path):
    """In a child process: op determinism is global for the rest of a process, and slower."""
    from tensorflow.python.framework import config

    os.environ.pop(seeding.DETERMINISTIC_ENV, None)
    seeding.set_seed(0)                                      # off by default (checked in this process)
    assert not config.is_op_determinism_enabled()
    code = ("from advlab.io.seeding import set_seed\nfrom tensorflow.python.framework import config\n"
            "set_seed(0)\nprint(config.is_op_determinism_enabled())\n")
    assert _python(code, _env(tmp_path, ADVLAB_DETERMINISTIC="1")).stdout.split()[-1] == "True"
    explicit = code.replace("set_seed(0)", "set_seed(0, deterministic=True)")
    assert _python(explicit, _env(tmp_path)).stdout.split()[-1] == "True"


# Fields of evaluation.json that measure time, not the model (they differ from run to run).
TIMING = ("ms_per_image", "train_time_s", "timing_batch_size")


@pytest.mark.slow
def test_cli_train_and_evaluate_twice_give_the_same_numbers(tmp_path):
    """`python -m advlab train` (+ its evaluation) twice with one seed into two folders: equal
    numbers, bitwise-equal generator weights and adversarial sets (smallest CLI settings)."""
    env = _env(tmp_path, ADVLAB_SCALE="smoke")     # shares the session's ADVLAB_CACHE_DIR (classifier)
    args = ["--dataset", "mnist", "--n-train", "64", "--n-test", "32", "--epochs", "1", "--attacks", "fgsm",
            "--batch-size", "32", "--quiet"]
    for run in ("run1", "run2"):
        proc = subprocess.run([sys.executable, "-m", "advlab", "train", *args, "--out", str(tmp_path / run)],
                              cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = (json.loads((tmp_path / r / "evaluation.json").read_text()) for r in ("run1", "run2"))
    for result in (first, second):
        for key in TIMING:
            result.pop(key, None)
        result.pop("provenance", None)    # the command line (--out) and the clock differ by design
    assert first == second
    from advlab.io.models import load_model

    g1, g2 = (load_model(tmp_path / r / "generator.keras") for r in ("run1", "run2"))
    for w1, w2 in zip(g1.weights, g2.weights):
        np.testing.assert_array_equal(np.asarray(w1), np.asarray(w2))
    saved = sorted((tmp_path / "run1" / "adv").rglob("*.npz"))
    assert saved, "the CLI cached no adversarial set"
    for adv1 in saved:
        adv2 = tmp_path / "run2" / adv1.relative_to(tmp_path / "run1")
        with np.load(adv1) as a, np.load(adv2) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
