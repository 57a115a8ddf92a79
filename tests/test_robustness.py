"""APGD / PGD with restarts and evaluate_robustness on models whose answer is known (seconds)."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from advlab.attacks import apgd as A
from advlab.evaluation import adaptive
from advlab.evaluation import robustness as R
from advlab.purifiers import Purifier

TINY = R.SUITES["quick"].replace(apgd_iters=10, apgd_restarts=2, pgd_iters=10, pgd_short_iters=3,
                                 bpda_iters=10, transfer_iters=10, square_queries=20, square_n=4,
                                 sanity_iters=5)


def linear(classes, seed=0, shape=(8, 8, 1)):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes)],
                             name=f"linear{classes}")
    d = int(np.prod(shape))
    model.layers[-1].set_weights([rng.normal(size=(d, classes)).astype(np.float32),
                                  rng.normal(size=classes).astype(np.float32)])
    return model


def interior_images(n, seed=1, shape=(8, 8, 1)):
    # inside [0.3, 0.7]: with eps <= 0.3 the box [0, 1] never clips, so the optimum is eps * ||d||_1
    return np.random.default_rng(seed).uniform(0.3, 0.7, (n, *shape)).astype(np.float32)


def two_class_problem(n=200):
    """A two-class linear model, images, labels, and an eps between two examples' robust radii."""
    model, x = linear(2), interior_images(n)
    w, b = model.layers[-1].get_weights()
    y = model(x).numpy().argmax(1)
    d = np.where(y[:, None] == 0, w[:, 0] - w[:, 1], w[:, 1] - w[:, 0])          # w_y - w_other
    margin = (x.reshape(n, -1) * d).sum(1) + np.where(y == 0, b[0] - b[1], b[1] - b[0])
    radius = np.sort(margin / np.abs(d).sum(1))                                  # smallest eps that flips
    eps = float((radius[n // 2] + radius[n // 2 + 1]) / 2)
    return model, x, y, eps, float(np.mean(margin / np.abs(d).sum(1) > eps))


def accuracy(model, x, y):
    return float(np.mean(model(x).numpy().argmax(1) == y))


@pytest.mark.parametrize("attack,loss", [("apgd", "ce"), ("apgd", "cw"), ("pgd", "cw"), ("pgd", "ce")])
def test_linear_model_reaches_the_analytic_worst_case(attack, loss):
    model, x, y, eps, robust = two_class_problem()
    assert 0.3 < robust < 0.7
    x_adv = getattr(A, attack)(model, x, y, eps, loss=loss, n_iter=20, restarts=1)
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert accuracy(model, x_adv, y) == pytest.approx(robust)


def test_more_restarts_never_raise_accuracy():
    keras.utils.set_random_seed(0)
    # sin features: a bumpy loss, where the random start matters
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation=keras.ops.sin,
                                                 kernel_initializer=keras.initializers.RandomNormal(stddev=2.0)),
                              keras.layers.Dense(5)])
    x = interior_images(96, seed=3)
    y = model(x).numpy().argmax(1)
    accs = [accuracy(model, A.apgd(model, x, y, 0.02, loss="ce", n_iter=2, restarts=r, seed=7), y)
            for r in (1, 2, 4)]
    assert accs[0] >= accs[1] >= accs[2] and accs[0] > accs[2]
    _, info = A.apgd(model, x, y, 0.02, n_iter=2, restarts=4, seed=7, return_info=True)
    assert np.all(np.diff(info["accuracy_per_restart"]) <= 0)


def test_checkpoints_follow_the_paper():
    assert A.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


class Round(Purifier):
    """Bit-depth reduction with tf.round: differentiable as far as TF knows, gradient zero."""

    name = "round8"

    def purify_tensor(self, x):
        return tf.round(x * 8.0) / 8.0


def test_rounding_defence_masks_gradients_and_bpda_breaks_it():
    model, x, y, _, _ = two_class_problem(n=48)
    report = R.evaluate_robustness(Round(), model, x, y, 0.2, TINY, verbose=False)
    exact, bpda = report.stage("pgd-cw").accuracy, report.stage("bpda-pgd").accuracy
    assert exact > 0.5 and bpda < 0.1
    assert report.flags["gradient_masking"]["raised"]
    assert "bpda-pgd" in [b["stage"] for b in report.flags["gradient_masking"]["beaten_by"]]
    assert report.worst_case["accuracy"] <= bpda


def test_undefended_linear_model_raises_no_flag_and_vanishes_at_large_eps():
    model, x, y, eps, robust = two_class_problem(n=48)
    report = R.evaluate_robustness(None, model, x, y, eps, TINY, verbose=False)
    assert [s.name for s in report.stages] == ["clean", "apgd-ce", "apgd-dlr", "pgd-cw", "pgd-cw-short",
                                               "square"]
    assert "C&W" in report.stage("apgd-dlr").attack or "CW" in report.stage("apgd-dlr").attack
    assert report.worst_case["accuracy"] == pytest.approx(robust)
    assert not any(f["raised"] for f in report.flags.values())
    assert report.sanity[-1]["eps"] == 1.0 and report.sanity[-1]["accuracy"] == 0.0
    lo, hi = report.worst_case["ci95"]
    assert lo <= report.worst_case["accuracy"] <= hi


class Noisy(Purifier):
    """A random, non-differentiable purifier that counts how often it runs."""

    name, stochastic, differentiable = "noisy", True, False

    def __init__(self):
        self.calls = 0
        self.rng = np.random.default_rng(0)

    def purify_tensor(self, x):
        def run(a):
            self.calls += 1
            return np.clip(a + self.rng.normal(0, 0.01, a.shape), 0, 1).astype(np.float32)
        return tf.ensure_shape(tf.numpy_function(run, [x], tf.float32, stateful=True), x.shape)


def test_eot_averages_the_requested_number_of_samples():
    noisy, model = Noisy(), linear(3)
    x = interior_images(6)
    pipeline = adaptive.defended_model(noisy, model, "bpda", eot_samples=20)
    pipeline(x)
    assert noisy.calls == 20
    noisy.calls = 0
    A.apgd(pipeline, x, np.zeros(6, int), 0.1, n_iter=2)  # the start and 2 steps: 3 forward passes
    assert noisy.calls == 3 * 20
    report = R.evaluate_robustness(noisy, model, x, np.zeros(6, int), 0.1,
                                   TINY.replace(apgd_iters=2, pgd_iters=2, pgd_short_iters=1,
                                                square_queries=2, transfer_iters=2, sanity_iters=1),
                                   verbose=False)
    assert "EOT over 20" in report.stage("apgd-ce").threat_model
    assert "BPDA" in report.stage("apgd-ce").threat_model


def test_nothing_is_mutated():
    model, x, y, eps, _ = two_class_problem(n=16)
    x0, y0 = x.copy(), y.copy()
    A.apgd(model, x, y, eps, n_iter=3)
    A.pgd(model, x, y, eps, n_iter=3, restarts=2)
    R.evaluate_robustness(Round(), model, x, y, eps, TINY, verbose=False, sanity=False)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_bad_inputs_give_clear_errors():
    model, x, y, _, _ = two_class_problem(n=8)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        A.apgd(model, x, y, -0.1)
    with pytest.raises(ValueError, match="n_iter"):
        A.apgd(model, x, y, 0.1, n_iter=0)
    with pytest.raises(ValueError, match="restarts"):
        A.pgd(model, x, y, 0.1, restarts=0)
    with pytest.raises(ValueError, match="Unknown loss"):
        A.apgd(model, x, y, 0.1, loss="hinge")
    with pytest.raises(ValueError, match="needs >= 3 classes"):
        A.apgd(model, x, y, 0.1, loss="dlr")
    with pytest.raises(ValueError, match="images but y has"):
        A.apgd(model, x, y[:-1], 0.1)
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\]"):
        R.evaluate_robustness(None, model, x, y, -0.1, TINY)
    with pytest.raises(ValueError, match="Unknown suite"):
        R.evaluate_robustness(None, model, x, y, 0.1, "thorough")
    with pytest.raises(ValueError, match="one class per image"):
        R.evaluate_robustness(None, model, x, y[:-1], 0.1, TINY)
    with pytest.raises(ValueError, match="eot_samples must be >= 20"):
        R.evaluate_robustness(None, model, x, y, 0.1, TINY.replace(eot_samples=5))
    with pytest.raises(TypeError, match="defence must be"):
        R.evaluate_robustness("jpeg", model, x, y, 0.1, TINY)


def test_resume_skips_finished_stages(tmp_path, monkeypatch):
    model, x, y, eps, _ = two_class_problem(n=16)
    first = R.evaluate_robustness(None, model, x, y, eps, TINY, out=tmp_path, verbose=False)
    (state,) = tmp_path.glob("robustness_*.state.json")
    saved = json.loads(state.read_text())
    del saved["cells"]["pgd-cw"]
    state.write_text(json.dumps(saved))
    calls = []
    real_pgd = A.pgd
    monkeypatch.setattr(A, "pgd", lambda *a, **k: calls.append(k["n_iter"]) or real_pgd(*a, **k))
    monkeypatch.setattr(A, "apgd", lambda *a, **k: pytest.fail("a finished APGD stage was rerun"))
    monkeypatch.setattr(R, "_square", lambda *a, **k: pytest.fail("a finished Square stage was rerun"))
    again = R.evaluate_robustness(None, model, x, y, eps, TINY, out=tmp_path, verbose=False)
    assert calls == [TINY.pgd_iters]
    assert [r["accuracy"] for r in again.rows()] == [r["accuracy"] for r in first.rows()]
    # other images are another run: nothing is reused
    monkeypatch.undo()
    other = R.evaluate_robustness(None, model, x[:8], y[:8], eps, TINY, out=tmp_path, verbose=False)
    assert other.n == 8 and len(list(tmp_path.glob("robustness_*.state.json"))) == 2


def test_report_is_saved_with_the_threat_model_on_every_row(tmp_path):
    model, x, y, eps, _ = two_class_problem(n=16)
    report = R.evaluate_robustness(Round(), model, x, y, eps, TINY, verbose=False)
    paths = report.save("rb", tmp_path)
    assert all(p.is_file() for p in paths.values())
    assert all(r["threat_model"] for r in report.rows())
    assert json.loads(paths["json"].read_text())["worst_case"]["n"] == 16
    assert "worst-case" in str(report)


def test_apgd_is_reachable_through_the_attack_registry():
    from advlab import attacks

    model, x, y, eps, robust = two_class_problem(n=40)
    x_adv = attacks.attack("apgd", model, x, y, eps=eps, nb_iter=10, loss="cw", progress=False)
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert accuracy(model, x_adv, y) == pytest.approx(robust)


def test_wilson_interval():
    assert R.wilson_interval(0, 10)[0] == 0.0 and R.wilson_interval(10, 10)[1] == 1.0
    lo, hi = R.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


def binarized_linear_problem(n=120):
    """A two-class linear model behind 1-bit rounding, and the exact robust fraction at eps.

    The defence sees b = round(x'); pixel i can reach any b_i in [round(x_i - eps), round(x_i + eps)],
    so the worst margin is sum_i min(d_i lo_i, d_i hi_i) + c (a linear model's optimum is a vertex).
    """
    from advlab.attacks.quantized import quantized_box

    model = linear(2, seed=4)
    x = np.random.default_rng(5).uniform(0.0, 1.0, (n, 8, 8, 1)).astype(np.float32)
    w, b = model.layers[-1].get_weights()
    y = model(np.rint(x)).numpy().argmax(1)
    d = np.where(y[:, None] == 0, w[:, 0] - w[:, 1], w[:, 1] - w[:, 0])
    c = np.where(y == 0, b[0] - b[1], b[1] - b[0])

    def robust_at(eps):
        lo, hi = (v.reshape(n, -1) for v in quantized_box(x, eps, 1))
        return float(np.mean(np.minimum(d * lo, d * hi).sum(1) + c > 0))

    eps = min(np.linspace(0.01, 0.5, 50), key=lambda e: abs(robust_at(e) - 0.5))
    return model, x, y, float(eps), robust_at(float(eps))


def test_quantized_pgd_reaches_the_analytic_worst_case_behind_binarization():
    from advlab.attacks.quantized import quantized_pgd

    model, x, y, eps, robust = binarized_linear_problem()
    assert 0.2 < robust < 0.8
    x0 = x.copy()
    x_adv = quantized_pgd(model, x, y, eps, 1, n_iter=20, restarts=1)
    np.testing.assert_array_equal(x, x0)                                   # input untouched
    assert np.abs(x_adv - x).max() <= eps + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    assert accuracy(model, np.rint(x_adv), y) == pytest.approx(robust)
    with pytest.raises(ValueError, match="levels"):
        quantized_pgd(model, x, y, eps, 0)
    with pytest.raises(ValueError, match="eps"):
        quantized_pgd(model, x, y, -0.1, 1)


def test_the_suite_runs_the_designed_attack_on_bit_depth_reduction():
    from advlab.purifiers.classical import RoundedBits, build_classical

    model, x, y, eps, robust = binarized_linear_problem(n=48)
    assert build_classical("bit_depth", bits=1).quantization_levels == 1
    report = R.evaluate_robustness(RoundedBits(1), model, x, y, eps, TINY, sanity=False, verbose=False)
    stage = report.stage("quantized-pgd")
    assert "designed for the defence" in stage.threat_model
    assert stage.accuracy == pytest.approx(robust) and report.worst_case["accuracy"] == pytest.approx(robust)
    assert report.flags["gradient_masking"]["raised"]     # tf.round reads as a zero gradient


def test_paired_comparison_counts_the_images_only_one_defence_keeps(tmp_path):
    from advlab.evaluation.robust_report import paired_comparison

    model, x, y, eps, _ = two_class_problem(n=48)
    plain = R.evaluate_robustness(None, model, x, y, eps, TINY, sanity=False, verbose=False)
    rounded = R.evaluate_robustness(Round(), model, x, y, eps, TINY, sanity=False, verbose=False)
    saved = json.loads(plain.save("plain", tmp_path)["json"].read_text())     # works on the saved JSON too
    cmp = paired_comparison(saved, rounded)
    ra, rb = R.unpack_bits(plain.worst_case["robust"]), R.unpack_bits(rounded.worst_case["robust"])
    assert cmp["n"] == 48 and cmp["accuracy_a"] == pytest.approx(plain.worst_case["accuracy"])
    assert cmp["only_a_robust"] == int((ra & ~rb).sum()) and cmp["only_b_robust"] == int((rb & ~ra).sum())
    assert 0 < cmp["mcnemar_p"] <= 1
    assert paired_comparison(plain, plain)["mcnemar_p"] == 1.0
    other = R.evaluate_robustness(None, model, x[:40], y[:40], eps, TINY, sanity=False, verbose=False)
    with pytest.raises(ValueError, match="different images"):
        paired_comparison(plain, other)


def test_cascade_gives_the_same_worst_case_and_resumes_inside_a_stage(tmp_path, monkeypatch):
    from advlab.evaluation import robust_stages

    model, x, y, eps, robust = two_class_problem(n=48)
    full = R.evaluate_robustness(Round(), model, x, y, 0.2, TINY, verbose=False)
    casc = R.evaluate_robustness(Round(), model, x, y, 0.2, TINY, cascade=True, verbose=False)
    assert casc.worst_case["accuracy"] == pytest.approx(full.worst_case["accuracy"], abs=2 / 48)
    assert casc.suite["cascade"] and "cascade" in casc.stage("bpda-pgd").attack
    # each stage attacked exactly the images every earlier stage left robust
    alive = np.ones(48, bool)
    for s in casc.stages:
        pool = np.arange(48) if s.name != "square" else np.arange(TINY.square_n)
        np.testing.assert_array_equal(s.indices, pool[alive[pool]])
        alive[s.indices] &= s.correct
    np.testing.assert_array_equal(R.unpack_bits(casc.worst_case["robust"]), alive)
    assert casc.flags["gradient_masking"]["raised"]       # BPDA alone breaks what exact PGD left
    assert casc.sanity[-1]["accuracy"] <= casc.worst_case["accuracy"] and casc.sanity[-1]["n"] == 48

    # kill -9 inside a stage: the chunks saved before it are not attacked again
    monkeypatch.setattr(robust_stages, "CHUNK", 16)
    model, x, y, eps, robust = two_class_problem(n=48)
    first = R.evaluate_robustness(None, model, x, y, eps, TINY, cascade=True, out=tmp_path, verbose=False)
    (state,) = tmp_path.glob("robustness_*.state.json")
    saved = json.loads(state.read_text())
    assert "apgd-ce#1" in saved["cells"]
    for cell in [c for c in saved["cells"] if not c.startswith(("clean", "apgd-ce#0"))]:
        del saved["cells"][cell]                          # as if killed after apgd-ce's first chunk
    state.write_text(json.dumps(saved))
    calls = []
    real_apgd = A.apgd
    monkeypatch.setattr(A, "apgd", lambda m, xs, *a, **k: calls.append((k["loss"], k["seed"], len(xs)))
                        or real_apgd(m, xs, *a, **k))
    again = R.evaluate_robustness(None, model, x, y, eps, TINY, cascade=True, out=tmp_path, verbose=False)
    assert [c for c in calls if c[:2] == ("ce", 0)] == [("ce", 0, 16), ("ce", 0, 16)]   # chunks 2 and 3 only
    assert again.worst_case["robust"] == first.worst_case["robust"]
    assert again.worst_case["accuracy"] == pytest.approx(robust)
