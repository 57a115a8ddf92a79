"""The long jobs that tests/test_faults.py kills, as a child process: ``python fault_jobs.py JOB OUT``.

Each job prints ``START`` once its imports and inputs are ready (the parent draws its kill
time from then on), then does the job the way a user runs it, writing into ``OUT`` and the
caches named by ``$ADVLAB_CACHE_DIR`` / ``$ADVLAB_FIGURES_DIR``. ``$FAULT_CLASSIFIER`` is the
tiny target classifier (a ``.keras`` file the parent trained once).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

N_IMAGES = 96


def _data(n=N_IMAGES, split="test"):
    from advlab.io import data

    return data.load("mnist", split, source="sample", limit=n, verbose=False)


def _classifier():
    from advlab.io.models import load_model

    return load_model(os.environ["FAULT_CLASSIFIER"], what="classifier")


def _start():
    print("START", flush=True)


def classifier(out: Path):
    """``get_classifier``: trains a small MLP (cached in ``$ADVLAB_CACHE_DIR/classifiers``)."""
    from advlab import classifiers
    from advlab.config import get_config

    cfg = get_config("smoke", n_train=256, n_test=32, classifier_epochs=2, batch_size=32)
    _start()
    model = classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=False)
    (out / "fingerprint.txt").write_text(classifiers.fingerprint(model))


def attack(out: Path):
    """``adversarial_set``: PGD on 96 images in chunks of 16 (each chunk cached as it finishes)."""
    from advlab import attacks

    model, (x, y) = _classifier(), _data()
    _start()
    attacks.adversarial_set("mnist", "test", "pgd", model, x, y, preset="mnist", chunk_size=16, batch_size=16,
                            progress=False, verbose=False, nb_iter=10, eps_iter=0.05)


def purifier(out: Path):
    """``train_purifier``: a narrow residual cGAN, 4 epochs, checkpointed every epoch."""
    from advlab.config import CGANConfig, get_config
    from advlab.training import train_purifier

    x, _ = _data(64)
    x_adv = np.clip(x + np.random.default_rng(0).uniform(-0.3, 0.3, x.shape), 0, 1).astype(np.float32)
    _start()
    config = CGANConfig.for_scale(get_config("smoke")).replace(
        epochs=4, batch_size=16, residual_blocks=0, base_filters=8, max_filters=16, disc_filters=8,
        lambda_perc=0.0, perceptual="none")
    train_purifier(x_adv, x, config, out / "run", samples=0, verbose=0)


def experiment(out: Path):
    """A tiny generalizability matrix (classical purifiers as rows) with its cell checkpoint."""
    from advlab.experiments.generalizability import generalizability_matrix
    from advlab.purifiers.classical import build_classical

    model, (x, y) = _classifier(), _data(48)
    rows = {"fgsm": ("median", {"window": 3}), "pgd": ("bit_depth", {"bits": 2})}
    _start()
    table = generalizability_matrix(lambda a: build_classical(rows[a][0], **rows[a][1]), model, x, y,
                                    ["fgsm", "pgd"], ["fgsm", "pgd", "bim"], checkpoint=out / "matrix_state.json",
                                    progress=False)
    table.save("matrix", out)


def comparison(out: Path):
    """The defence comparison on a tiny lab (three defences, few images), checkpointed per cell."""
    from advlab.config import get_config
    from advlab.evaluation import comparison as cmp
    from advlab.experiments.pipeline import Lab

    model = _classifier()
    (x_tr, y_tr), (x, y) = _data(32, "train"), _data(24)
    cfg = get_config("smoke", n_train=32, n_test=24, attack_iters=3, batch_size=16)
    lab = Lab("mnist", cfg, "mnist_cnn", model, x_tr, y_tr, x, y, verbose=False)
    plan = cmp.plan_for(cfg, defences=("none", "median", "bit_depth"), gray_attacks=("fgsm", "pgd"),
                        adaptive_attacks=("pgd",), channels=("save-png", "print-scan"), n_eval=24,
                        n_adaptive=8, n_adaptive_slow=8, eot_samples=1)
    _start()
    result = cmp.run_comparison(lab, plan, progress=False, save=False)
    (out / "rows.json").write_text(json.dumps(result.rows, indent=1))


JOBS = {f.__name__: f for f in (classifier, attack, purifier, experiment, comparison)}

if __name__ == "__main__":
    job, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    JOBS[job](folder)
    print("DONE", flush=True)
