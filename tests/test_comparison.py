"""The defence-comparison runner on a tiny lab (real MNIST sample, the session's mnist_cnn)."""
import math

import numpy as np
import pytest

from advlab.evaluation import comparison


@pytest.fixture
def lab(mnist_sample, mnist_cnn):
    from advlab.config import get_config
    from advlab.experiments.pipeline import Lab

    x_tr, y_tr, x_te, y_te = mnist_sample
    cfg = get_config("smoke", n_train=64, n_test=24, attack_iters=3, batch_size=32)
    return Lab("mnist", cfg, "mnist_cnn", mnist_cnn, x_tr[:64], y_tr[:64], x_te[:24], y_te[:24], verbose=False)


def _plan(cfg):
    return comparison.plan_for(cfg, defences=("none", "median", "autoencoder_noisy"), gray_attacks=("fgsm",),
                               adaptive_attacks=("pgd",), n_eval=24, n_adaptive=8, n_adaptive_slow=4,
                               eot_samples=2, ae_epochs=1)


def test_table_names_every_mode_and_resumes(lab, monkeypatch):
    from advlab.evaluation import adaptive

    result = comparison.run_comparison(lab, _plan(lab.cfg), progress=False)
    frame = result.to_frame()
    assert list(frame.index) == ["none", "median", "autoencoder_noisy"]
    for col in ("clean:none", "gray-box:fgsm", "e2e:pgd", "bpda:pgd", "save-png:pgd", "save-jpeg:pgd",
                "print-scan:pgd", "psnr_db", "ms_per_image", "train_s"):
        assert col in frame.columns, col
    assert math.isnan(frame.loc["median", "e2e:pgd"])                     # not differentiable
    assert not math.isnan(frame.loc["median", "bpda:pgd"])
    assert frame.loc["autoencoder_noisy", "stochastic"] and frame.loc["autoencoder_noisy", "eot_samples"] == 2
    assert frame.loc["median", "eot_samples"] == 1
    notes = {(c["defence"], c["mode"]): c["note"] for c in result.cells}
    assert "EOT-2" in notes[("autoencoder_noisy", "e2e")]
    assert notes[("median", "bpda")] == "gradient=bpda"
    # no defence: clean accuracy equals the classifier's own, gray-box equals the attacked accuracy
    from advlab import classifiers

    assert frame.loc["none", "clean:none"] == pytest.approx(100 * classifiers.accuracy(lab.classifier, lab.x_test, lab.y_test))
    saved = next(r for r in result.rows if r["defence"] == "none")      # saved as a fraction, shown in %
    assert saved["clean:none"] == pytest.approx(classifiers.accuracy(lab.classifier, lab.x_test, lab.y_test))
    x_fgsm = lab.adversarial("fgsm")
    assert frame.loc["none", "gray-box:fgsm"] == pytest.approx(100 * classifiers.accuracy(lab.classifier, x_fgsm, lab.y_test))
    assert frame.loc["none", "gray-box:fgsm"] < frame.loc["none", "clean:none"]
    n_by = {(c["defence"], c["mode"]): c["n"] for c in result.cells}
    assert n_by[("none", "e2e")] == 8 and n_by[("none", "clean")] == 24
    # saved table + figure
    from advlab.io.paths import figures_dir

    names = {p.name for p in figures_dir().iterdir()}
    assert {"10_defences_mnist_smoke.csv", "10_defences_mnist_smoke_cells.csv", "10_defences_mnist_smoke.json",
            "10_defences_mnist_smoke.png"} <= names
    # a second run reuses every finished cell (no attack is run again)
    monkeypatch.setattr(adaptive, "adaptive_attack", lambda *a, **k: pytest.fail("recomputed a cell"))
    again = comparison.run_comparison(lab, _plan(lab.cfg), progress=False, save=False)
    cols = [c for c in frame.columns if ":" in c]          # accuracies (PSNR of a random purifier varies)
    assert again.to_frame()[cols].equals(frame[cols])


def test_plans_and_errors(lab):
    assert set(comparison.DEFENCES) >= {"none", "residual_cgan", "versatile_pix2pix", "autoencoder", "cap_gan",
                                        "bit_depth", "median", "jpeg", "tvm", "wavelet"}
    from advlab.config import get_config

    full = comparison.plan_for(get_config("full"))
    assert "pgd" in full.adaptive_attacks and full.n_eval >= 1000 and full.n_adaptive >= 1000
    with pytest.raises(TypeError, match="ComparisonPlan has no field"):
        comparison.plan_for(lab.cfg, n_images=3)
    with pytest.raises(ValueError, match="Unknown defence"):
        comparison.build_defence("gaussian_blur", lab, comparison.plan_for(lab.cfg))


def test_residual_cgan_row_can_come_from_a_cli_run(lab, tmp_path):
    import json

    from advlab.purifiers import residual_cgan

    gen = residual_cgan.build_generator((28, 28, 1), residual_blocks=0, base_filters=4, max_filters=8)
    gen.save(tmp_path / "generator.keras")
    (tmp_path / "train_info.json").write_text(json.dumps({"train_time_s": 12.5}))
    plan = comparison.plan_for(lab.cfg, cgan_run=str(tmp_path))
    purifier, train_s = comparison.build_defence("residual_cgan", lab, plan)
    assert train_s == 12.5 and purifier.name == "residual_cgan" and purifier.source == str(tmp_path)
    np.testing.assert_allclose(purifier(lab.x_test[:4]), gen.predict(lab.x_test[:4], verbose=0), atol=1e-6)


def test_cpu_budget_is_a_valid_plan():
    from advlab.config import resolve

    plan = resolve("full", "cpu", job="comparison").plan
    assert plan.n_eval >= 1000 and "pgd" in plan.adaptive_attacks and "pgd" in plan.gray_attacks
    assert set(comparison.DEFENCES) == set(plan.defences)


def test_the_budget_applies_only_at_full_scale():
    from advlab.config import get_config, resolve

    run = resolve("full", "cpu", job="comparison")
    assert (run.cfg.n_train, run.cfg.n_test, run.cfg.attack_iters) == (10000, None, 40)
    assert run.plan.versatile_pairs == 3600 and run.plan.n_eval == 1000 and run.purifier.epochs == 6
    run = resolve("full", "paper", job="comparison", n_eval=2000)
    assert run.cfg == get_config("full") and run.plan.n_eval == 2000 and run.plan.purifier_kwargs == {}
    run = resolve("smoke", "cpu", job="comparison")
    assert run.plan == comparison.plan_for(get_config("smoke")) and run.cfg == get_config("smoke")
    # the comparison trains the experiments' residual cGAN, so the cached one is shared
    assert run.purifier == resolve("smoke", job="experiments").purifier
