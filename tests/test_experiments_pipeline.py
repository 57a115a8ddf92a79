"""The real-data wiring without training: composite training pairs, plans, perceptual choice,
the one-command script's argument handling."""
from __future__ import annotations

import numpy as np
import pytest

from advlab import budgets
from advlab.config import get_config, resolve
from advlab.experiments import pipeline


def make_lab(n=12):
    x = np.linspace(0, 0.5, n * 4, dtype=np.float32).reshape(n, 2, 2, 1)
    lab = pipeline.Lab("mnist", get_config("smoke"), "mnist_cnn", None, x, np.arange(n) % 10, x[:4],
                       np.arange(4), verbose=False)
    shift = {"fgsm": 0.1, "pgd": 0.2, "cw": 0.3}
    lab.attacked, lab.cached = [], set()

    def adversarial(attack, split="test", part=None, only_cached=False, **kw):
        x = lab.x_train if split == "train" else lab.x_test
        x = x if part is None else x[part]
        if only_cached:
            return x + shift[attack] if attack in lab.cached else None
        lab.attacked.append((attack, len(x)))
        return x + shift[attack]
    lab.adversarial = adversarial
    return lab, shift


def test_composite_pairs_split_training_images_evenly():
    lab, shift = make_lab()
    x_adv, x_clean = lab.training_pairs(("fgsm", "pgd", "cw"))
    assert x_adv.shape == x_clean.shape == lab.x_train.shape
    np.testing.assert_array_equal(x_clean, lab.x_train)
    delta = (x_adv - x_clean).reshape(len(x_adv), -1)[:, 0]
    np.testing.assert_allclose(delta, [0.1, 0.2, 0.3] * 4, atol=1e-6)   # image k attacked by attack k % 3
    assert lab.attacked == [("fgsm", 4), ("pgd", 4), ("cw", 4)]        # each attack runs on its slice only
    single, _ = lab.training_pairs("pgd")
    np.testing.assert_allclose(single - lab.x_train, 0.2, atol=1e-6)
    lab.attacked.clear()
    x_adv, x_clean = lab.training_pairs(("fgsm", "pgd"), limit=5)
    assert len(x_adv) == len(x_clean) == 5 and lab.attacked == [("fgsm", 3), ("pgd", 2)]
    np.testing.assert_allclose((x_adv - x_clean).reshape(5, -1)[:, 0], [0.1, 0.2, 0.1, 0.2, 0.1], atol=1e-6)
    lab.attacked.clear()
    lab.cached = {"pgd"}                       # e.g. an attack-specific purifier attacked the whole split
    x_adv, _ = lab.training_pairs(("fgsm", "pgd", "cw"))
    assert lab.attacked == [("fgsm", 4), ("cw", 4)]                    # pgd's slice comes from the cache
    np.testing.assert_allclose((x_adv - lab.x_train).reshape(12, -1)[:, 0], [0.1, 0.2, 0.3] * 4, atol=1e-6)


def test_stacked_composite_attacks_every_image_with_every_attack():
    lab, shift = make_lab()
    lab.cached = {"pgd"}
    x_adv, x_clean = lab.training_pairs(("fgsm", "pgd", "cw"), stack=True)
    assert x_adv.shape == x_clean.shape == (36, 2, 2, 1)
    np.testing.assert_array_equal(x_clean, np.concatenate([lab.x_train] * 3))
    np.testing.assert_allclose((x_adv - x_clean).reshape(36, -1)[:, 0], [0.1] * 12 + [0.2] * 12 + [0.3] * 12,
                               atol=1e-6)
    assert lab.attacked == [("fgsm", 12), ("pgd", 12), ("cw", 12)]     # whole split: the specific models' cache
    lab.attacked.clear()
    x_adv, _ = lab.training_pairs(("fgsm", "pgd"), limit=5, stack=True)
    assert len(x_adv) == 10 and lab.attacked == [("fgsm", 5), ("pgd", 5)]


def test_versatile_all_row_in_full_plans_only():
    full, smoke = pipeline.plan(get_config("full")), pipeline.plan(get_config("smoke"))
    assert full.versatile_all and full.versatile_all_epochs is None and not smoke.versatile_all
    assert resolve("full", "cpu", job="experiments").plan.versatile_all_epochs == 4


def test_plans_by_scale():
    smoke, full = pipeline.plan(get_config("smoke")), pipeline.plan(get_config("full"))
    assert full.train_attacks == ("fgsm", "bim", "pgd", "mifgsm", "cw", "autoattack")
    assert full.test_attacks == full.train_attacks + ("deepfool",)
    assert full.ablation_blocks == (0, 1, 3, 5, 7, 9, 11, 13, 15)
    assert "deepfool" in smoke.test_attacks and "deepfool" not in smoke.train_attacks
    assert set(smoke.train_attacks) <= set(full.train_attacks)
    assert pipeline.plan(get_config("smoke"), sweep_n=7).sweep_n == 7


def test_perceptual_auto_announces_stand_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert pipeline.resolve_perceptual("auto") == "classifier"
    assert "VGG19" in capsys.readouterr().out
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / pipeline.VGG19_FILE).write_bytes(b"x")
    assert pipeline.resolve_perceptual("auto") == "vgg19"
    assert pipeline.resolve_perceptual("none") == "none"


def test_cli_rejects_unknown_experiment():
    from advlab.cli import build_parser

    assert build_parser().parse_args(["experiment", "matrix", "--scale", "full", "--estimate"]).estimate
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "table9"])


@pytest.mark.parametrize("argv, message", [
    (["experiment", "matrix", "--arch", "mnist_lenet"], "--arch applies to a transfer run only"),
    (["experiment", "transfer", "--arch", "resnet9"], "'resnet9' is not a classifier architecture"),
    (["experiment", "ablation", "--purifier-run", "runs/x"], "--purifier-run applies to the sweeps, grids and transfer"),
    (["experiment", "transfer", "--arch", "mnist_lenet", "--purifier-run", "runs/x"], "would name the wrong source"),
    (["experiment", "transfer", "--arch", "mnist_lenet", "--estimate"], "--arch applies to a transfer run only"),
])
def test_experiment_refuses_flags_that_do_not_apply_before_any_work(argv, message):
    from advlab import cli

    with pytest.raises(SystemExit, match=message):
        cli.main(argv)


def test_estimate_arithmetic_with_fixed_probe_costs(monkeypatch):
    from advlab.experiments import estimate

    monkeypatch.setattr(estimate, "seconds_per_image_attack", lambda lab, attack, n, **p: 0.01)
    monkeypatch.setattr(estimate, "purifier_costs", lambda lab, plan, blocks, **kw: {
        "train_s_per_pair_epoch": 0.001 * (1 + blocks), "purify_s_per_image": 0.0001})
    lab, _ = make_lab()
    plan = pipeline.plan(get_config("full"))
    rows = estimate.estimate("matrix", lab, plan, n_train=1000, n_test=100, epochs=2)
    total = {r["part"]: r["seconds"] for r in rows}["TOTAL"]
    attacks = 6 * 1000 * 0.01 + 7 * 100 * 0.01
    training = 7 * 2 * 1000 * 0.001 * (1 + lab.cfg.residual_blocks)
    purify = 7 * 8 * 100 * 0.0001
    assert total == pytest.approx(attacks + training + purify)
    abl = estimate.estimate("ablation", lab, plan, n_train=1000, n_test=100, epochs=1)
    assert len(abl) == len(plan.ablation_blocks) + len(plan.ablation_attacks) + 1
    assert abl[0]["seconds"] == pytest.approx(1000 * 0.001 * 1)          # 0 blocks
    assert abl[len(plan.ablation_blocks) - 1]["seconds"] == pytest.approx(1000 * 0.001 * 16)   # 15 blocks
    # the ablation trains for its own epochs, once per seed
    abl = estimate.estimate("ablation", lab, plan.replace(ablation_epochs=5, ablation_seeds=(0, 1, 2),
                                                          ablation_blocks=(0, 3)), n_train=1000, n_test=100, epochs=1)
    assert [r["seconds"] for r in abl[:2]] == pytest.approx([5 * 3 * 1000 * 0.001 * 1, 5 * 3 * 1000 * 0.001 * 4])
    assert "x 3 seeds, 5 epochs" in abl[1]["part"]
    with pytest.raises(ValueError, match="unknown"):
        estimate.estimate("table9", lab, plan, 1, 1, 1)


def test_cpu_budget_keeps_the_protocol_and_shrinks_the_cost():
    run = resolve("full", "cpu", job="experiments")
    cfg, p = run.cfg, run.plan
    assert (cfg.n_train, cfg.n_test, cfg.purifier_epochs) == (2000, 1000, 10)
    paper = resolve("full", "paper", job="experiments")
    assert (paper.cfg, paper.plan) == (get_config("full"), pipeline.plan(get_config("full")))
    assert resolve("smoke", "cpu", job="experiments", n_test=50).cfg == get_config("smoke", n_test=50)
    full = pipeline.plan(get_config("full"))
    assert (p.train_attacks, p.test_attacks, p.ablation_blocks) == (full.train_attacks, full.test_attacks,
                                                                    full.ablation_blocks)
    assert cfg.attack_iters == 40 and cfg.n_test >= 1000
    assert budgets.BUDGETS["cpu"]["purifier"].items() <= p.purifier_kwargs.items()
    assert run.purifier.base_filters == 32 and run.purifier.epochs == 10          # what the lab trains
    assert min(p.sweep_iterations) == 10 and max(p.sweep_iterations) == 100


def test_lab_trains_other_classifiers_with_the_classifier_config(monkeypatch):
    from advlab import classifiers

    lab, _ = make_lab()
    lab.classifier_cfg = get_config("full")
    seen = {}
    monkeypatch.setattr(classifiers, "get_classifier", lambda ds, cfg, arch=None, verbose=True: seen.update(cfg=cfg))
    lab.classifier_for("mnist_mlp")
    assert seen["cfg"] is lab.classifier_cfg


def test_sweep_state_is_keyed_by_the_purifiers_weights_not_only_its_name():
    import keras

    from advlab.experiments.tables import purifier_key
    from advlab.purifiers import KerasPurifier

    def tiny(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 3, padding="same")])

    a, a_again, b = tiny(0), tiny(0), tiny(1)
    key = purifier_key(KerasPurifier(a, name="M_tableI"))
    assert key.startswith("M_tableI_")
    assert key == purifier_key(KerasPurifier(a_again, name="M_tableI"))   # same weights: resume
    assert key != purifier_key(KerasPurifier(b, name="M_tableI"))         # other weights: fresh table


def test_prepare_takes_a_run_config_and_trains_the_scales_classifier(monkeypatch):
    from advlab import classifiers
    from advlab.io import data

    x = np.zeros((4, 28, 28, 1), np.float32)
    seen = {}
    monkeypatch.setattr(data, "load", lambda ds, split, source, limit, verbose: (x, np.arange(4)))
    monkeypatch.setattr(classifiers, "get_classifier", lambda ds, cfg, arch=None, verbose=True: seen.setdefault("c", cfg))
    monkeypatch.setattr(classifiers, "accuracy", lambda model, x, y: 1.0)
    run = resolve("smoke", job="experiments", n_train=64)
    lab = pipeline.prepare("mnist", run, verbose=False)
    assert lab.cfg == run.cfg and seen["c"] == run.classifier and run.classifier.n_train == 1000
    seen.clear()
    assert pipeline.prepare("mnist", run.cfg, verbose=False).classifier_cfg == run.classifier   # same from a LabConfig


def test_lab_trains_the_scales_purifier_with_the_plans_fields_then_loads_it():
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32) * 0.5
    lab = pipeline.Lab("mnist", get_config("smoke"), "mnist_cnn", None, x, np.arange(8), x[:4], np.arange(4),
                       verbose=False)
    lab.adversarial = lambda attack, split="test", part=None, only_cached=False, **kw: (
        None if only_cached else (x if part is None else x[part]) + 0.25)
    tiny = dict(base_filters=4, max_filters=8, disc_filters=4, batch_size=4, perceptual="none")
    purifier, stats = lab.purifier("fgsm", epochs=1, return_stats=True, **tiny)
    saved = purifier.info["config"]
    assert saved == {**resolve("smoke").purifier.to_dict(), **tiny, "epochs": 1}   # the scale's, plus the plan's
    assert stats["n_pairs"] == 8 and stats["epochs"] == 1 and purifier.trainer is None
    again, _ = lab.purifier("fgsm", epochs=1, return_stats=True, **tiny)        # cached: loaded, not trained
    np.testing.assert_allclose(again(x[:2]), purifier(x[:2]), atol=1e-5)


def test_transfer_from_another_classifier_names_its_source_and_saves_rows_and_figure(tmp_path, monkeypatch):
    """The reverse direction of Table IV: a lab whose target is mnist_lenet attacks itself first
    (the reference), then the plan's other classifiers; the file says where the purifier came from."""
    import json

    import keras

    from advlab.experiments import generalizability, tables
    from advlab.purifiers import KerasPurifier

    monkeypatch.setenv("ADVLAB_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))
    x = np.full((4, 4, 4, 1), 0.5, np.float32)
    lab = pipeline.Lab("mnist", get_config("smoke"), "mnist_lenet", None, x, np.arange(4), x, np.arange(4),
                       verbose=False)
    lab.classifier_for = lambda arch: arch.removeprefix("mnist_")
    attacked = []
    lab.attack_fn = lambda split: lambda a, model, x_, y_: attacked.append((a, model)) or x_
    monkeypatch.setattr(generalizability, "default_accuracy_fn", lambda model, x_, y_: {"lenet": 0.5}.get(model, 0.25))
    keras.utils.set_random_seed(0)
    purifier = KerasPurifier(keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 3, padding="same")]),
                             name="M_run")
    plan = resolve("smoke", job="experiments").plan.replace(transfer_archs=("mnist_cnn", "mnist_lenet"),
                                                             transfer_attacks=("fgsm",))
    rows = tables.run_transfer(lab, plan, purifier=purifier, tag="run7", progress=False)
    assert [(r["source"], r["target"], r["attack"]) for r in rows] == [
        ("mnist_lenet", "mnist_lenet", "clean"), ("mnist_lenet", "mnist_lenet", "fgsm"),
        ("mnist_lenet", "mnist_cnn", "clean"), ("mnist_lenet", "mnist_cnn", "fgsm")]
    assert attacked == [("fgsm", "lenet"), ("fgsm", "cnn")]            # each attack on its own target
    assert rows[0]["no_defence"] == 0.5 and rows[2]["defence"] == 0.25
    stem = tmp_path / "figures" / "06_transfer_mnist_smoke_from_mnist_lenet_run7"
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["rows"] == rows and saved["meta"]["purifier"] == "M_run" and "gray-box" in saved["meta"]["threat_model"]
    assert stem.with_suffix(".csv").is_file() and stem.with_suffix(".png").stat().st_size > 0


def test_a_purifier_run_names_its_results_after_the_run_folder(tmp_path):
    from advlab.cli.experiment import purifier_run_name

    run = tmp_path / "mnist_versatile7"
    run.mkdir()
    (run / "generator.keras").write_bytes(b"")
    assert purifier_run_name(run) == purifier_run_name(run / "generator.keras") == "mnist_versatile7"
    with pytest.raises(SystemExit, match="no folder name"):
        purifier_run_name("/")
