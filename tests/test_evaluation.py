"""Metrics by hand, timing, and evaluate_purifier on a real classifier and a real attack."""
from __future__ import annotations

import math

import numpy as np
import pytest

from advlab import evaluation
from advlab.experiments import paper_results
from advlab.purifiers import Identity, Purifier


def test_mae_and_psnr_by_hand():
    x = np.zeros((2, 2, 2, 1), np.float32)
    y = x.copy()
    y[0] = 0.1                                  # MSE 0.01 -> 20 dB; MAE 0.1
    y[1, 0, 0, 0] = 1.0                         # MSE 0.25 -> 6.02 dB; MAE 0.25
    np.testing.assert_allclose(evaluation.mae(x, y), [0.1, 0.25], rtol=1e-6)
    np.testing.assert_allclose(evaluation.psnr(x, y), [20.0, 10 * math.log10(4)], rtol=1e-5)
    assert evaluation.psnr(x, x)[0] == evaluation.PSNR_CAP_DB


def test_error_by_tone_by_hand():
    # one image of 4 pixels: dark 0, mid 0.5, bright 1, bright 1
    x = np.array([0.0, 0.5, 1.0, 1.0], np.float32).reshape(1, 2, 2, 1)
    x_pur = x + np.array([0.1, 0.2, 0.0, 0.0], np.float32).reshape(1, 2, 2, 1)   # errors 0.01, 0.04
    tones = evaluation.error_by_tone(x, x_pur)
    assert tones["pixels_dark"] == 0.25 and tones["pixels_mid"] == 0.25 and tones["pixels_bright"] == 0.5
    np.testing.assert_allclose([tones["mse_share_dark"], tones["mse_share_mid"], tones["mse_share_bright"]],
                               [0.2, 0.8, 0.0], rtol=1e-5)
    np.testing.assert_allclose(tones["psnr_without_mid"], -10 * math.log10(0.01 / 4), rtol=1e-5)
    np.testing.assert_allclose(tones["psnr_without_dark"], -10 * math.log10(0.04 / 4), rtol=1e-5)
    # fixing bright pixels (no error there) changes nothing: the overall PSNR
    np.testing.assert_allclose(tones["psnr_without_bright"], evaluation.psnr(x, x_pur)[0], rtol=1e-5)
    assert evaluation.error_by_tone(x, x)["mse_share_mid"] == 0.0
    assert evaluation.error_by_tone(x, x)["psnr_without_mid"] == evaluation.PSNR_CAP_DB
    # thresholds are inclusive: a pixel at exactly `dark` is dark
    assert evaluation.error_by_tone(np.full((1, 1, 1, 1), 0.05, np.float32),
                                    np.zeros((1, 1, 1, 1), np.float32))["mse_share_dark"] == 1.0
    # two images: shares are pooled over the batch, psnr_without_* is a mean of per-image PSNRs
    x2 = np.concatenate([x, x])
    err2 = np.concatenate([x_pur, x + np.array([0.0, 0.1, 0.0, 0.0], np.float32).reshape(1, 2, 2, 1)])
    two = evaluation.error_by_tone(x2, err2)
    np.testing.assert_allclose(two["mse_share_mid"], (0.04 + 0.01) / (0.05 + 0.01), rtol=1e-5)
    # image 1 without mid-tones keeps 0.01 / 4; image 2 has no error left (the cap)
    np.testing.assert_allclose(two["psnr_without_mid"],
                               (-10 * math.log10(0.01 / 4) + evaluation.PSNR_CAP_DB) / 2, rtol=1e-5)
    with pytest.raises(ValueError, match="dark"):
        evaluation.error_by_tone(x, x_pur, dark=0.9, bright=0.5)


def test_ssim_identity_and_noise():
    rng = np.random.default_rng(0)
    x = rng.random((3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(evaluation.ssim(x, x), 1.0, atol=1e-5)
    noisy = np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1).astype(np.float32)
    assert np.all(evaluation.ssim(x, noisy) < 0.9)


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        evaluation.mae(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 3)))


def test_ms_per_image_is_positive_and_uses_batches():
    calls = []

    class Counting(Purifier):
        def __call__(self, x, batch_size=256):
            calls.append(len(x))
            return x

    ms = evaluation.ms_per_image(Counting(), np.zeros((10, 4, 4, 1), np.float32), batch_size=4, repeats=2)
    assert ms > 0 and calls == [4, 10, 10]       # one warm-up batch, then two timed passes


class Oracle(Purifier):
    """Knows the clean images (a perfect purifier, for testing the bookkeeping)."""

    def __init__(self, x_adv, x):
        self.lookup = {a.tobytes(): c for a, c in zip(x_adv, x)} | {c.tobytes(): c for c in x}

    def __call__(self, x, batch_size=256):
        return np.stack([self.lookup[a.tobytes()] for a in x])


def test_evaluate_purifier_with_real_attack(mnist_cnn, mnist_sample, tmp_path):
    from advlab import attacks

    _, _, x_te, y_te = mnist_sample
    x, y = x_te[:64], y_te[:64]
    x_adv = attacks.attack("fgsm", mnist_cnn, x, y, eps=0.3, progress=False)
    before = x_adv.copy()

    none = evaluation.evaluate_purifier(mnist_cnn, Identity(), x, y, {"fgsm": x_adv})
    r = none["attacks"]["fgsm"]
    assert r["purified_accuracy"] == r["attacked_accuracy"] < none["clean_accuracy"]
    assert none["clean_through_purifier"] == none["clean_accuracy"]
    assert r["psnr_purified"] == pytest.approx(r["psnr_attacked"]) and r["psnr_attacked"] < 20
    assert none["ms_per_image"] >= 0

    oracle = Oracle(x_adv, x)
    subset = (x_adv[:16], x[:16], y[:16])          # an attack evaluated on a subset
    best = evaluation.evaluate_purifier(mnist_cnn, oracle, x, y, {"fgsm": x_adv, "fgsm16": subset},
                                        timing=False, train_info={"train_time_s": 1.5, "epochs": 3})
    assert best["attacks"]["fgsm"]["purified_accuracy"] == best["clean_accuracy"]
    assert best["attacks"]["fgsm"]["psnr_purified"] == evaluation.PSNR_CAP_DB
    assert best["attacks"]["fgsm16"]["n"] == 16
    assert best["train_time_s"] == 1.5 and best["train_epochs"] == 3
    np.testing.assert_array_equal(x_adv, before)

    paths = evaluation.save_evaluation(best, "eval", folder=tmp_path)
    assert paths["json"].is_file() and paths["csv"].read_text().startswith("images,")
    table = paper_results.compare_table_i(best, "mnist")
    assert table[1]["paper_purified_%"] == 98.6
    assert table[1]["run_purified_%"] == pytest.approx(100 * best["clean_accuracy"], abs=0.01)


def test_mcnemar_by_hand():
    a = np.array([1, 1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 0, 0, 1, 1], bool)
    t = evaluation.mcnemar(a, b)                    # discordant: 2 only a, 1 only b
    assert (t["n"], t["only_a"], t["only_b"]) == (6, 2, 1) and t["accuracy_a"] == pytest.approx(4 / 6)
    assert t["mcnemar_p"] == pytest.approx(min(1.0, 2 * (1 + 3) / 2 ** 3))      # k <= 1 of m = 3: p = 1
    t = evaluation.mcnemar(np.ones(8, bool), np.r_[np.zeros(6, bool), np.ones(2, bool)])
    assert (t["only_a"], t["only_b"]) == (6, 0) and t["mcnemar_p"] == pytest.approx(2 / 2 ** 6)
    assert evaluation.mcnemar(a, a)["mcnemar_p"] == 1.0 and evaluation.mcnemar(a, a)["difference"] == 0.0
    with pytest.raises(ValueError, match="same images"):
        evaluation.mcnemar(a, b[:3])


def test_compare_purifiers_counts_images_each_one_alone_gets_right(mnist_cnn, mnist_sample):
    from advlab import attacks

    _, _, x_te, y_te = mnist_sample
    x, y = x_te[:48], y_te[:48]
    x_adv = attacks.attack("fgsm", mnist_cnn, x, y, eps=0.3, progress=False)
    paired = evaluation.compare_purifiers(mnist_cnn, Identity(), Oracle(x_adv, x), x, y,
                                          {"fgsm": x_adv, "fgsm16": (x_adv[:16], x[:16], y[:16])})
    assert set(paired) == {"clean", "fgsm", "fgsm16"}
    assert paired["clean"]["only_a"] == paired["clean"]["only_b"] == 0        # both leave clean images as they are
    fgsm = paired["fgsm"]
    attacked = evaluation.evaluate_purifier(mnist_cnn, Identity(), x, y, {"fgsm": x_adv}, timing=False)
    assert fgsm["accuracy_a"] == attacked["attacks"]["fgsm"]["purified_accuracy"]
    assert fgsm["accuracy_b"] == attacked["clean_accuracy"] and fgsm["only_a"] == 0 and fgsm["only_b"] > 0
    assert fgsm["only_b"] == round(len(y) * (fgsm["accuracy_b"] - fgsm["accuracy_a"]))
    assert paired["fgsm16"]["n"] == 16


def test_compare_purifiers_reuses_the_per_image_results_of_evaluate_purifier(mnist_cnn, mnist_sample):
    from advlab import attacks

    _, _, x_te, y_te = mnist_sample
    x, y = x_te[:32], y_te[:32]
    x_adv = attacks.attack("fgsm", mnist_cnn, x, y, eps=0.3, progress=False)
    sets = {"fgsm": x_adv, "fgsm8": (x_adv[:8], x[:8], y[:8])}
    per_image = {}
    result = evaluation.evaluate_purifier(mnist_cnn, Oracle(x_adv, x), x, y, sets, timing=False, per_image=per_image)
    assert set(per_image) == {"clean", "fgsm", "fgsm8"} and per_image["fgsm8"].shape == (8,)
    assert per_image["fgsm"].mean() == result["attacks"]["fgsm"]["purified_accuracy"]

    class NotAgain:    # purifier b's results are known: calling it would purify twice
        def __call__(self, x, batch_size=256):
            raise AssertionError("purifier b ran again")

    reused = evaluation.compare_purifiers(mnist_cnn, Identity(), NotAgain(), x, y, sets, known=per_image)
    assert reused == evaluation.compare_purifiers(mnist_cnn, Identity(), Oracle(x_adv, x), x, y, sets)
    with pytest.raises(ValueError, match="results for 32 images"):
        evaluation.compare_purifiers(mnist_cnn, Identity(), NotAgain(), x, y, sets, known={**per_image, "fgsm": per_image["fgsm8"]})


def test_evaluate_purifier_rejects_bad_input(mnist_cnn):
    x = np.zeros((4, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="labels"):
        evaluation.evaluate_purifier(mnist_cnn, Identity(), x, np.zeros(3), {})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluation.evaluate_purifier(mnist_cnn, Identity(), x, np.zeros(4), {"fgsm": x + 2})


def test_paper_tables():
    assert paper_results.table_i("MNIST")["residual_cgan"]["pgd"][0] == 97.8
    assert paper_results.table_i("fashion-mnist")["clean"] == 88.8
    assert paper_results.table_ii_rows("resnet50v2")[0] == {"images": "clean", "paper_no_defence_%": 67.0,
                                                            "paper_purified_%": 62.4}
    with pytest.raises(ValueError, match="Table I"):
        paper_results.table_i("svhn")
