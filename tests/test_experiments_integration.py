"""The table runners end to end on the real attacks and a trained MNIST CNN, with the identity
purifier standing in for a trained one (so no purifier is trained here): right rows, right
numbers for "no defence", the expected file names in figures/, caches reused."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from advlab.config import get_config
from advlab.experiments import pipeline, tables
from advlab.purifiers import Identity


@pytest.fixture()
def lab(mnist_cnn, mnist_sample):
    x_tr, y_tr, x_te, y_te = mnist_sample
    cfg = get_config("smoke", n_train=32, n_test=16, attack_iters=5)
    lab = pipeline.Lab("mnist", cfg, "mnist_cnn", mnist_cnn, x_tr[:32], y_tr[:32], x_te[:16], y_te[:16],
                       tuple(str(i) for i in range(10)), verbose=False)
    trained = []

    def fake_purifier(attacks, **kwargs):      # stands in for training: records what was asked
        trained.append(attacks)
        return Identity()

    lab.purifier = fake_purifier
    lab.trained = trained
    return lab


def figures() -> Path:
    return Path(os.environ["ADVLAB_FIGURES_DIR"])


def test_run_matrix_real_attacks(lab):
    plan = pipeline.plan(lab.cfg, train_attacks=("fgsm", "pgd"), test_attacks=("fgsm", "pgd"))
    table = tables.run_matrix(lab, plan, progress=False)
    assert table.rows == ["fgsm", "pgd", "versatile", "none"]
    assert table.columns == ["clean", "fgsm", "pgd"]
    assert lab.trained == ["fgsm", "pgd", ("fgsm", "pgd")]
    # identity purifier: every row equals the no-defence row, measured on the real attacks
    np.testing.assert_allclose(table.acc[:3], np.repeat(table.acc[3:], 3, axis=0))
    assert table.cell("none", "clean") >= 0.8 and table.cell("none", "pgd") < table.cell("none", "clean")
    assert {p.name for p in figures().iterdir()} >= {"06_matrix_mnist_smoke.json", "06_matrix_mnist_smoke.csv",
                                                     "06_matrix_mnist_smoke.png"}
    again = tables.run_matrix(lab, plan, progress=False)          # resumed from the checkpoint
    assert len(lab.trained) == 3
    np.testing.assert_allclose(again.acc, table.acc)


def test_attack_purifier_is_the_matrix_row(lab):
    asked = []
    lab.purifier = lambda attacks, **kwargs: asked.append((attacks, kwargs)) or Identity()
    plan = pipeline.plan(lab.cfg, train_attacks=("fgsm", "pgd"), test_attacks=("fgsm",), purifier_epochs=2)
    tables.run_matrix(lab, plan, versatile=False, progress=False)
    assert [a for a, _ in asked] == ["fgsm", "pgd"]
    matrix_rows, asked[:] = list(asked), []
    for attack in plan.train_attacks:
        tables.attack_purifier(lab, attack, plan)
    assert asked == matrix_rows and asked[0][1]["epochs"] == 2   # same attack, same training settings


def test_run_sweeps_and_grids_files(lab):
    plan = pipeline.plan(lab.cfg, test_attacks=("fgsm", "pgd"), sweep_iterations=(2, 5), sweep_eps=(0.3,),
                         eps_grid=(0.0, 0.3), sweep_n=8, grid_n=3)
    it_rows, eps_rows = tables.run_sweeps(lab, plan, purifier=Identity(), progress=False)
    assert len(it_rows) == 2 * 1 * 2 * 2 and len(eps_rows) == 2 * 2 * 2
    for r in it_rows + eps_rows:           # identity "defence" changes nothing
        twin = [s for s in (it_rows + eps_rows) if s is not r and s["attack"] == r["attack"]
                and s["eps"] == r["eps"] and s["nb_iter"] == r["nb_iter"]]
        assert all(s["accuracy"] == r["accuracy"] for s in twin)
    quality, paths = tables.run_grids(lab, plan, purifier=Identity())
    assert [q["attack"] for q in quality] == ["fgsm", "pgd"]
    assert all(q["psnr_restored"] == q["psnr_attacked"] for q in quality)
    names = {p.name for p in figures().iterdir()}
    assert names >= {f"07_{k}_mnist_smoke.{e}" for k in ("iterations", "eps") for e in ("json", "csv", "png")}
    assert names >= {"09_quality_mnist_smoke.json", "09_quality_mnist_smoke.csv", "09_quality_mnist_smoke.png",
                     "09_grid_mnist_smoke_fgsm.png", "09_grid_mnist_smoke_pgd.png"}
    assert set(paths) == {"fgsm", "pgd"}
