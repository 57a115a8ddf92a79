"""Experiment runners on hand-checkable stand-ins (no TensorFlow training involved).

The stand-in world: an image is "classified correctly" iff its first pixel is < 0.5.
Clean first pixels are 0.02, 0.07, ..., 0.47 (10 images, all correct). An attack adds a
constant (FGSM +0.3, PGD +0.6); a purifier subtracts a constant (M_fgsm 0.3, M_pgd 0.5).
So, by hand (counting first pixels below 0.5):

=========  =====  ====  ====
row        clean  fgsm  pgd
=========  =====  ====  ====
M_fgsm     1.0    1.0   0.4     (pgd - 0.3 = x + 0.3: 0.32 .. 0.47 -> 4 of 10)
M_pgd      1.0    1.0   0.8     (pgd - 0.5 = x + 0.1: 0.12 .. 0.47 -> 8 of 10)
none       1.0    0.4   0.0
=========  =====  ====  ====

G(M_fgsm, pgd) = 1 - 0.4 / 1.0 = 0.6;  G(M_pgd, fgsm) = 1 - 1.0 / 0.8 = -0.25 (negative: M_pgd
defends FGSM better than its own attack).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from advlab import experiments as ex

OFFSET = {"fgsm": 0.3, "pgd": 0.6, "deepfool": 0.2}
SUBTRACT = {"fgsm": 0.3, "pgd": 0.5}


@pytest.fixture()
def world():
    x = np.zeros((10, 4, 4, 1), np.float32)
    x[:, 0, 0, 0] = 0.02 + 0.05 * np.arange(10)
    y = np.zeros(10, np.int64)
    calls = {"train": [], "attack": []}

    def attack_fn(name, model, x_in, y_in, **params):
        calls["attack"].append((name, params))
        shift = OFFSET[name] if not params else params["eps"] * params["nb_iter"] / 100
        return x_in + np.float32(shift)

    def accuracy_fn(model, x_in, y_in):
        return float(np.mean(np.asarray(x_in)[:, 0, 0, 0] < 0.5))

    def train_fn(attack):
        calls["train"].append(attack)
        if isinstance(attack, str):
            return lambda x_in: x_in - np.float32(SUBTRACT[attack])
        return lambda x_in: x_in - np.float32(0.45)   # a "versatile" compromise

    return x, y, attack_fn, accuracy_fn, train_fn, calls


def test_g_metric_hand_worked():
    # Table III of the paper: M_BIM on FGSM, 63.5 vs 71.8 on BIM -> G = 0.116
    assert ex.g_metric(63.5, 71.8) == pytest.approx(1 - 63.5 / 71.8)
    assert round(ex.g_metric(63.5, 71.8), 3) == 0.116
    assert ex.g_metric(0.4, 1.0) == pytest.approx(0.6)
    assert ex.g_metric(1.0, 0.8) == pytest.approx(-0.25)       # negative: B defended better than A
    assert ex.g_metric(0.8, 0.8) == 0.0
    np.testing.assert_allclose(ex.g_metric([0.4, 1.0], [1.0, 0.8]), [0.6, -0.25])
    for bad in ((0.5, 0.0), (-0.1, 0.5), (float("nan"), 0.5)):
        with pytest.raises(ValueError):
            ex.g_metric(*bad)


def test_matrix_2x2_shape_labels_values(world, tmp_path):
    x, y, attack_fn, accuracy_fn, train_fn, calls = world
    x_before = x.copy()
    table = ex.generalizability_matrix(train_fn, None, x, y, ["fgsm", "pgd"], ["fgsm", "pgd"],
                                       attack_fn=attack_fn, accuracy_fn=accuracy_fn, progress=False)
    assert table.rows == ["fgsm", "pgd", "none"]
    assert table.columns == ["clean", "fgsm", "pgd"]
    assert table.acc.shape == table.g.shape == (3, 3)
    np.testing.assert_allclose(table.acc, [[1.0, 1.0, 0.4], [1.0, 1.0, 0.8], [1.0, 0.4, 0.0]])
    assert table.g[0, 1] == 0.0 and table.g[1, 2] == 0.0              # own attack
    assert table.g[0, 2] == pytest.approx(0.6)
    assert table.g[1, 1] == pytest.approx(-0.25)
    assert np.isnan(table.g[:, 0]).all() and np.isnan(table.g[2]).all()  # clean column, none row
    assert calls["train"] == ["fgsm", "pgd"]
    assert [c[0] for c in calls["attack"]] == ["fgsm", "pgd"]          # each test set attacked once
    np.testing.assert_array_equal(x, x_before)                         # inputs not mutated
    paths = table.save("gen_matrix", folder=tmp_path)
    assert paths["json"].name == "gen_matrix.json" and paths["csv"].name == "gen_matrix.csv"
    again = ex.GeneralizabilityTable.from_dict(json.loads(paths["json"].read_text()))
    np.testing.assert_allclose(again.acc, table.acc)
    np.testing.assert_allclose(again.g, table.g, equal_nan=True)
    assert len(paths["csv"].read_text().strip().splitlines()) == 1 + 9


def test_matrix_versatile_row_unseen_attack_and_resume(world, tmp_path):
    x, y, attack_fn, accuracy_fn, train_fn, calls = world
    ckpt = tmp_path / "state" / "matrix.json"
    kwargs = dict(attack_fn=attack_fn, accuracy_fn=accuracy_fn, progress=False, checkpoint=ckpt,
                  extra_rows={"versatile": lambda: train_fn(("fgsm", "pgd"))})
    table = ex.generalizability_matrix(train_fn, None, x, y, ["fgsm", "pgd"], ["fgsm", "pgd", "deepfool"], **kwargs)
    assert table.rows == ["fgsm", "pgd", "versatile", "none"]
    assert table.columns == ["clean", "fgsm", "pgd", "deepfool"]
    assert table.meta["unseen_attacks"] == ["deepfool"]
    assert np.isnan(table.g[2]).all()                                  # versatile: no own attack
    # versatile subtracts 0.45: fgsm -> x - 0.15 (all correct), pgd -> x + 0.15 (0.17..0.47 -> 7/10)
    cmp = {r["attack"]: r for r in table.versatile_vs_specific()}
    assert cmp["pgd"]["versatile"] == pytest.approx(0.7) and cmp["pgd"]["difference"] == pytest.approx(-0.1)
    assert table.mean_defended("versatile", ["fgsm", "pgd"]) == pytest.approx(0.85)
    n_train, n_attack = len(calls["train"]), len(calls["attack"])
    again = ex.generalizability_matrix(train_fn, None, x, y, ["fgsm", "pgd"], ["fgsm", "pgd", "deepfool"], **kwargs)
    assert len(calls["train"]) == n_train and len(calls["attack"]) == n_attack   # all resumed
    np.testing.assert_allclose(again.acc, table.acc)


def test_matrix_rejects_bad_input(world):
    x, y, attack_fn, accuracy_fn, train_fn, _ = world
    with pytest.raises(ValueError, match="distinct"):
        ex.generalizability_matrix(train_fn, None, x, y, ["fgsm", "fgsm"], ["pgd"], attack_fn=attack_fn,
                                   accuracy_fn=accuracy_fn, progress=False)
    with pytest.raises(ValueError, match="match"):
        ex.generalizability_matrix(train_fn, None, x, y[:3], ["fgsm"], ["pgd"], attack_fn=attack_fn,
                                   accuracy_fn=accuracy_fn, progress=False)


def test_transfer_table(world):
    x, y, attack_fn, accuracy_fn, train_fn, _ = world
    rows = ex.transfer_table(train_fn("pgd"), {"B": object(), "C": object()}, x, y, ["fgsm", "pgd"],
                             source="A", attack_fn=attack_fn, accuracy_fn=accuracy_fn, progress=False)
    assert [(r["target"], r["attack"]) for r in rows] == [
        ("B", "clean"), ("B", "fgsm"), ("B", "pgd"), ("C", "clean"), ("C", "fgsm"), ("C", "pgd")]
    by = {(r["target"], r["attack"]): r for r in rows}
    assert by["B", "pgd"]["no_defence"] == 0.0 and by["B", "pgd"]["defence"] == pytest.approx(0.8)
    frame = ex.transfer_frame(rows)
    assert list(frame.index) == ["clean", "fgsm", "pgd"] and list(frame.columns) == ["B", "C"]
    assert frame.loc["pgd", "B"] == "0.0 / 80.0"


def test_iteration_and_eps_sweeps_rows_files_resume(world, tmp_path):
    x, y, attack_fn, accuracy_fn, _, calls = world
    purifier = lambda x_in: x_in - np.float32(0.1)
    ckpt = tmp_path / "sweep_state.json"
    rows = ex.iteration_sweep(None, purifier, x, y, attacks=("pgd", "mifgsm"), iterations=(10, 50),
                              eps_values=(2 / 255, 0.3), attack_fn=attack_fn, accuracy_fn=accuracy_fn,
                              checkpoint=ckpt, progress=False)
    assert len(rows) == 2 * 2 * 2 * 2
    assert {r["defence"] for r in rows} == {"none", "defended"}
    assert {r["eps_label"] for r in rows} == {"2/255", "0.3"}
    pgd = [c for c in calls["attack"] if c[0] == "pgd"]
    assert pgd[0][1] == {"eps": 2 / 255, "nb_iter": 10, "eps_iter": pytest.approx(2.5 * (2 / 255) / 10)}
    mi = [c for c in calls["attack"] if c[0] == "mifgsm"]
    assert mi[0][1]["eps_iter"] == pytest.approx((2 / 255) / 10)
    # stand-in attack shifts by eps * nb_iter / 100: eps 0.3, 50 iterations -> +0.15 -> 0.17..0.62: 7/10
    r = next(r for r in rows if r["attack"] == "pgd" and r["eps"] == 0.3 and r["nb_iter"] == 50
             and r["defence"] == "none")
    assert r["accuracy"] == pytest.approx(0.7)
    n = len(calls["attack"])
    assert ex.iteration_sweep(None, purifier, x, y, attacks=("pgd", "mifgsm"), iterations=(10, 50),
                              eps_values=(2 / 255, 0.3), attack_fn=attack_fn, accuracy_fn=accuracy_fn,
                              checkpoint=ckpt, progress=False) == rows
    assert len(calls["attack"]) == n
    paths = ex.save_sweep(rows, "07_iterations_mnist", ex.plot_iteration_sweep(rows))
    assert sorted(p.name for p in paths.values()) == [
        "07_iterations_mnist.csv", "07_iterations_mnist.json", "07_iterations_mnist.png"]
    assert Path(os.environ["ADVLAB_FIGURES_DIR"]) == paths["png"].parent

    eps_rows = ex.eps_sweep(None, None, x, y, attacks=("pgd",), eps_values=(0.0, 0.1, 0.3), nb_iter=100,
                            attack_fn=attack_fn, accuracy_fn=accuracy_fn, progress=False)
    assert [(r["eps"], r["defence"], r["accuracy"]) for r in eps_rows] == [
        (0.0, "none", 1.0), (0.1, "none", pytest.approx(0.8)), (0.3, "none", pytest.approx(0.4))]
    paths = ex.save_sweep(eps_rows, "07_eps_mnist", ex.plot_eps_sweep(eps_rows))
    assert paths["png"].is_file() and paths["csv"].is_file()


def test_sweep_rejects_impossible_eps(world):
    x, y, attack_fn, accuracy_fn, _, _ = world
    with pytest.raises(ValueError, match="eps"):
        ex.iteration_sweep(None, None, x, y, eps_values=(1.5,), attack_fn=attack_fn, accuracy_fn=accuracy_fn)
    with pytest.raises(ValueError, match="iteration"):
        ex.iteration_sweep(None, None, x, y, iterations=(0,), attack_fn=attack_fn, accuracy_fn=accuracy_fn)


def test_ablation_rows_and_figure(world, tmp_path):
    x, y, attack_fn, accuracy_fn, _, _ = world
    trained = []

    def train_fn(blocks):
        trained.append(blocks)
        stats = {"l1": 0.1 / (blocks + 1), "perceptual": 1.0, "gen_loss": 0.7, "seconds_per_epoch": 1.0 + blocks}
        return (lambda x_in: x_in - np.float32(0.1 * min(blocks, 5))), stats

    x_adv = {"fgsm": attack_fn("fgsm", None, x, y), "pgd": attack_fn("pgd", None, x, y)}
    ckpt = tmp_path / "ablation.json"
    rows = ex.residual_block_ablation(train_fn, None, x, y, x_adv, blocks=(0, 1, 5), accuracy_fn=accuracy_fn,
                                      checkpoint=ckpt, progress=False)
    assert [r["blocks"] for r in rows] == [0, 1, 5]
    assert set(rows[0]) >= {"l1", "perceptual", "gen_loss", "seconds_per_epoch", "n_params", "clean", "fgsm",
                            "pgd", "mean_attacked"}
    assert rows[0]["fgsm"] == pytest.approx(0.4) and rows[2]["fgsm"] == 1.0 and rows[2]["pgd"] == pytest.approx(0.8)
    assert rows[2]["mean_attacked"] == pytest.approx(0.9)
    assert ex.residual_block_ablation(train_fn, None, x, y, x_adv, blocks=(0, 1, 5), accuracy_fn=accuracy_fn,
                                      checkpoint=ckpt, progress=False) == rows
    assert trained == [0, 1, 5]                                        # resumed, not retrained
    paths = ex.save_sweep(rows, "08_ablation_mnist", ex.plot_ablation(rows))
    assert {p.name for p in paths.values()} == {"08_ablation_mnist.json", "08_ablation_mnist.csv",
                                                "08_ablation_mnist.png"}


def test_ablation_with_seeds_reports_mean_and_spread(tmp_path):
    x = np.linspace(0, 1, 40, dtype=np.float32).reshape(40, 1, 1, 1)
    y = np.zeros(40, np.int64)
    x_adv = {"fgsm": x}
    trained = []

    def train_fn(blocks, seed):
        trained.append((blocks, seed))
        stats = {"l1": 0.1, "perceptual": 1.0, "gen_loss": 0.7, "seconds_per_epoch": 1.0 + blocks + seed}
        return (lambda x_in: x_in), stats

    # accuracy = the share of images >= a threshold that moves with the seed: known mean and spread
    def accuracy_fn(model, x_in, y_in):
        return float(np.mean(np.asarray(x_in).ravel() >= 0.1 * len(trained) % 1))

    ckpt = tmp_path / "ablation_seeds.json"
    with pytest.raises(ValueError, match="seeds"):
        ex.residual_block_ablation(train_fn, None, x, y, x_adv, blocks=(0,), seeds=(1, 1), progress=False)
    rows = ex.residual_block_ablation(train_fn, None, x, y, x_adv, blocks=(0, 3), seeds=(0, 1, 2),
                                      accuracy_fn=accuracy_fn, checkpoint=ckpt, progress=False)
    assert trained == [(0, 0), (0, 1), (0, 2), (3, 0), (3, 1), (3, 2)]
    assert [(r["blocks"], r["seed"]) for r in rows] == trained
    again = ex.residual_block_ablation(train_fn, None, x, y, x_adv, blocks=(0, 3), seeds=(0, 1, 2),
                                       accuracy_fn=accuracy_fn, checkpoint=ckpt, progress=False)
    assert again == rows and len(trained) == 6                        # resumed per (blocks, seed)
    summary = ex.seed_summary(rows)
    assert [s["blocks"] for s in summary] == [0, 3] and summary[0]["n_seeds"] == 3
    for s, runs in zip(summary, (rows[:3], rows[3:])):
        vals = [r["fgsm"] for r in runs]
        assert s["fgsm"] == pytest.approx(np.mean(vals)) and s["fgsm_std"] == pytest.approx(np.std(vals, ddof=1))
        assert (s["fgsm_min"], s["fgsm_max"]) == (min(vals), max(vals)) and s["seeds"] == [0, 1, 2]
        assert s["seconds_per_epoch"] == pytest.approx(np.mean([r["seconds_per_epoch"] for r in runs]))
    assert summary[0]["fgsm_std"] > 0                                   # the seeds did differ
    assert ex.seed_summary(rows[:1])[0]["fgsm_std"] == 0.0              # one seed: no spread
    fig = ex.plot_ablation(summary)
    assert "3 seeds" in fig.axes[2].get_title()


def test_checkpoint_from_other_run_is_ignored(tmp_path, capsys):
    path = tmp_path / "c.json"
    ex.Checkpoint(path, {"n": 1}).put("a", "b", 0.5)
    assert ex.Checkpoint(path, {"n": 1}).get("a", "b") == 0.5
    assert len(ex.Checkpoint(path, {"n": 2})) == 0
    assert "different run" in capsys.readouterr().out


def test_matrix_plot_saved(world):
    from advlab import viz

    x, y, attack_fn, accuracy_fn, train_fn, _ = world
    table = ex.generalizability_matrix(train_fn, None, x, y, ["fgsm", "pgd"], ["fgsm", "pgd"],
                                       attack_fn=attack_fn, accuracy_fn=accuracy_fn, progress=False)
    path = viz.savefig(ex.plot_matrix(table, "stand-in"), "06_matrix_test")
    assert path.name == "06_matrix_test.png" and path.stat().st_size > 1000
    assert not math.isnan(table.to_frame("G").loc["pgd", "fgsm"])


def test_default_step_never_exceeds_eps():
    from advlab.experiments.sweeps import default_step

    assert default_step("pgd", 0.3, 40) == pytest.approx(2.5 * 0.3 / 40)
    assert default_step("pgd", 0.3, 2) == 0.3                     # 2.5 * 0.3 / 2 would leave the ball
    assert default_step("mifgsm", 0.3, 10) == pytest.approx(0.03)
