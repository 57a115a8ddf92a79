"""advlab.attacks on a trained MNIST CNN: strength, budgets, purity, determinism, C&W quality."""
from __future__ import annotations

import numpy as np
import pytest

from advlab import attacks
from advlab.classifiers import accuracy

# Small budgets keep the suite fast; they are the same code paths as the paper defaults.
FAST = {
    "fgsm": {"eps": 0.3},
    "bim": {"eps": 0.3, "eps_iter": 0.05, "nb_iter": 10},
    "pgd": {"eps": 0.3, "eps_iter": 0.05, "nb_iter": 10},
    "mifgsm": {"eps": 0.3, "eps_iter": 0.05, "nb_iter": 10},
    "cw": {"steps": 20, "binary_search_steps": 2},
    "deepfool": {"max_iter": 5},
    "autoattack": {"eps": 0.3, "nb_iter": 5, "square_queries": 20},
    "square": {"eps": 0.3, "square_queries": 50},
}


@pytest.fixture(scope="module")
def xy(mnist_sample):
    _, _, x, y = mnist_sample
    return x[:300], y[:300]


def test_registry_lists_the_seven_attacks():
    assert attacks.ATTACKS == ("fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "autoattack")
    rows = {r["attack"]: r for r in attacks.describe()}
    assert set(attacks.ATTACKS) <= set(rows)
    assert rows["pgd"]["library"].startswith("cleverhans")
    assert rows["autoattack"]["library"].startswith("ART")
    assert rows["cw"]["library"].startswith("advlab")


def test_default_params_presets():
    from advlab.config import get_config

    paper = attacks.default_params("pgd")
    assert paper["eps"] == pytest.approx(16 / 255) and paper["nb_iter"] == 40 and paper["eps_iter"] == 0.01
    assert attacks.default_params("mifgsm", "mnist")["eps"] == 0.3
    assert attacks.default_params("autoattack", "paper")["eps"] == pytest.approx(16 / 255)
    assert "eps" not in attacks.default_params("cw")
    smoke = attacks.default_params("bim", "mnist", cfg=get_config("smoke"))
    assert smoke["nb_iter"] == get_config("smoke").attack_iters
    assert smoke["eps_iter"] * smoke["nb_iter"] >= smoke["eps"], "smoke budget must be able to reach eps"


@pytest.mark.parametrize("name", ["bim", "pgd", "mifgsm"])
def test_iterative_linf_attacks_break_the_model(name, mnist_cnn, xy):
    x, y = xy
    x_adv = attacks.attack(name, mnist_cnn, x, y, progress=False, **FAST[name])
    assert accuracy(mnist_cnn, x, y) > 0.9
    assert accuracy(mnist_cnn, x_adv, y) < 0.10


def test_fgsm_and_autoattack_lower_accuracy(mnist_cnn, xy):
    x, y = xy[0][:100], xy[1][:100]
    clean = accuracy(mnist_cnn, x, y)
    assert accuracy(mnist_cnn, attacks.attack("fgsm", mnist_cnn, x, y, progress=False, eps=0.3), y) < clean - 0.5
    x_aa = attacks.attack("autoattack", mnist_cnn, x, y, progress=False, **FAST["autoattack"])
    assert accuracy(mnist_cnn, x_aa, y) < 0.10


@pytest.mark.parametrize("name", list(FAST))
def test_contract_range_budget_purity_determinism(name, mnist_cnn, xy):
    x, y = xy[0][:40].copy(), xy[1][:40].copy()
    x_before, y_before = x.copy(), y.copy()
    x_adv = attacks.attack(name, mnist_cnn, x, y, batch_size=16, progress=False, seed=1, **FAST[name])
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    np.testing.assert_array_equal(x, x_before)      # inputs never mutated
    np.testing.assert_array_equal(y, y_before)
    assert not np.array_equal(x_adv, x)
    if "eps" in FAST[name]:
        assert np.abs(x_adv - x).max() <= FAST[name]["eps"] + 1e-6
    assert accuracy(mnist_cnn, x_adv, y) < accuracy(mnist_cnn, x, y)
    again = attacks.attack(name, mnist_cnn, x, y, batch_size=16, progress=False, seed=1, **FAST[name])
    np.testing.assert_array_equal(x_adv, again)     # same seed -> same output


def test_pgd_seed_changes_random_start(mnist_cnn, xy):
    x, y = xy[0][:16], xy[1][:16]
    a = attacks.attack("pgd", mnist_cnn, x, y, progress=False, seed=0, nb_iter=2, eps_iter=0.01, eps=0.1)
    b = attacks.attack("pgd", mnist_cnn, x, y, progress=False, seed=1, nb_iter=2, eps_iter=0.01, eps=0.1)
    assert not np.array_equal(a, b)


def test_without_labels_uses_predictions(mnist_cnn, xy):
    x = xy[0][:32]
    x_adv = attacks.attack("bim", mnist_cnn, x, progress=False, **FAST["bim"])
    from advlab.classifiers import predict_labels

    assert np.mean(predict_labels(mnist_cnn, x_adv) == predict_labels(mnist_cnn, x)) < 0.2


def test_cw_succeeds_with_small_l2(mnist_cnn, xy):
    """The C&W failure modes seen in both libraries: L2 = 0 (unchanged) or no success."""
    x, y = xy[0][:60], xy[1][:60]
    x_adv = attacks.attack("cw", mnist_cnn, x, y, progress=False, steps=50, binary_search_steps=4)
    stats = attacks.evaluate(mnist_cnn, x, x_adv, y)
    assert stats["success_rate"] >= 0.9, stats
    l2 = attacks.norms(x, x_adv)["l2"]
    fooled = np.argmax(mnist_cnn(x_adv), -1) != y
    assert np.all(l2[fooled] > 0)
    # far below what an eps=0.3 L-inf attack spends (~5 on MNIST)
    assert 0.3 < np.median(l2[fooled]) < 3.0, np.median(l2[fooled])


def test_deepfool_finds_minimal_l2_perturbations(mnist_cnn, xy):
    x, y = xy[0][:40], xy[1][:40]
    x_adv = attacks.attack("deepfool", mnist_cnn, x, y, progress=False, max_iter=10)
    stats = attacks.evaluate(mnist_cnn, x, x_adv, y)
    assert stats["success_rate"] >= 0.9, stats
    assert 0 < stats["l2_mean"] < 4.0


def test_evaluate_fields(mnist_cnn, xy):
    x, y = xy[0][:20], xy[1][:20]
    stats = attacks.evaluate(mnist_cnn, x, x, y)
    assert stats["linf_max"] == 0 and stats["success_rate"] == 0
    assert stats["clean_accuracy"] == stats["adversarial_accuracy"]
