"""Before/after grids, PSNR/MAE per attack and their files (stand-in classifier, no training)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from advlab.experiments import grids
from advlab import viz


def predict_fn(model, x):
    """Stand-in classifier: label = 1 if the mean pixel is above 0.3 else 0."""
    return (np.asarray(x).mean(axis=(1, 2, 3)) > 0.3).astype(np.int64)


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.5, size=(6, 8, 8, 1)).astype(np.float32)
    x[:, :4] = 0.1                                                    # mean well below 0.3 -> label 0
    y = np.zeros(6, np.int64)
    x_adv = {"fgsm": np.clip(x + 0.3, 0, 1), "pgd": np.clip(x + 0.1, 0, 1)}
    return x, y, x_adv


def test_psnr_and_mae_hand_worked():
    a = np.zeros((2, 4, 4, 1))
    b = np.full((2, 4, 4, 1), 0.1)
    np.testing.assert_allclose(grids.psnr_per_image(a, b), [20.0, 20.0])      # 10 log10(1 / 0.01)
    np.testing.assert_allclose(grids.mae_per_image(a, b), [0.1, 0.1])
    assert grids.psnr_per_image(a, a)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError):
        grids.psnr_per_image(a, b[:1])


def test_restoration_quality_rows(images):
    x, _, x_adv = images
    purifier = lambda z: np.clip(z - 0.3, 0, 1) * 0 + x                # perfect restoration
    rows = grids.restoration_quality(x, x_adv, purifier)
    assert [r["attack"] for r in rows] == ["fgsm", "pgd"]
    fgsm = rows[0]
    assert fgsm["psnr_restored"] == pytest.approx(100.0) and fgsm["mae_restored"] == 0.0
    assert rows[1]["psnr_attacked"] == pytest.approx(20.0)              # +0.1 everywhere
    assert fgsm["psnr_attacked"] < rows[1]["psnr_attacked"]
    assert fgsm["mse_share_mid"] == 0.0 and fgsm["psnr_without_mid"] == pytest.approx(100.0)  # exact
    assert fgsm["pixels_mid"] == pytest.approx(float(((x > 0.05) & (x < 0.95)).mean()))
    # a purifier that errs only on mid-tone clean pixels: all of its error is there
    mid = (x > 0.05) & (x < 0.95)
    assert mid.any()
    off_on_mid = grids.restoration_quality(x, {"pgd": x_adv["pgd"]}, lambda z: np.where(mid, 1.0 - x, x))[0]
    assert off_on_mid["mse_share_mid"] == pytest.approx(1.0)
    assert off_on_mid["psnr_without_mid"] == pytest.approx(100.0)
    path = viz.savefig(grids.quality_bars(rows), "09_quality_test")
    assert path.name == "09_quality_test.png"


def test_before_after_grids_files(images):
    x, y, x_adv = images
    x_before = {k: v.copy() for k, v in x_adv.items()}
    purifier = lambda z: np.clip(z - 0.05, 0, 1)
    paths = grids.save_before_after_grids(None, purifier, x, y, x_adv, n=4, prefix="09_grid_mnist",
                                          predict_fn=predict_fn, class_names=["zero", "one"])
    assert sorted(p.name for p in paths.values()) == ["09_grid_mnist_fgsm.png", "09_grid_mnist_pgd.png"]
    assert all(p.parent == Path(os.environ["ADVLAB_FIGURES_DIR"]) and p.stat().st_size > 1000
               for p in paths.values())
    for k in x_adv:
        np.testing.assert_array_equal(x_adv[k], x_before[k])


def test_grid_layout_labels_and_wrong_in_red(images):
    import matplotlib.pyplot as plt

    x, y, x_adv = images
    xa = x_adv["fgsm"][:2]
    fig = grids.before_after_grid(x[:2], xa, x[:2], y[:2], predict_fn(None, x[:2]), predict_fn(None, xa),
                                  predict_fn(None, x[:2]), n=2, class_names=["zero", "one"])
    axes = np.array(fig.axes).reshape(2, 5)
    assert [ax.get_title() for ax in axes[0]] == list(grids.COLUMNS)
    assert axes[0, 0].get_xlabel() == "pred zero"
    assert axes[0, 1].get_xlabel().startswith("pred one ·") and axes[0, 1].get_xlabel().endswith("dB")
    assert axes[0, 1].xaxis.label.get_color() == "crimson"            # attacked prediction is wrong
    assert axes[0, 3].xaxis.label.get_color() == "black"
    assert axes[0, 4].get_xlabel() == "MAE 0.000"
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        grids.before_after_grid(x, xa, x, y, y, y, y)


@pytest.mark.parametrize("static", [False, True], ids=["ipywidgets", "static"])
def test_purification_browser_switches_attack_and_image(images, static):
    from advlab.viz.purify_browser import purification_browser

    x, y, x_adv = images
    seen = []

    def purifier(z):
        seen.append(np.asarray(z).copy())
        return np.clip(z - 0.05, 0, 1)

    box = purification_browser(None, purifier, x, y, x_adv, predict_fn=predict_fn, class_names=["zero", "one"],
                               static=static)
    assert list(box.attack.options) == ["fgsm", "pgd"] and box.index.max == len(x) - 1
    box.index.value = 3
    box.attack.value = "pgd"
    assert len(seen) == 3 and all(s.shape == (1, 8, 8, 1) for s in seen)   # only the shown image
    np.testing.assert_array_equal(seen[-1], x_adv["pgd"][3:4])
    with pytest.raises(ValueError, match="shape"):
        purification_browser(None, purifier, x, y, {"bad": x[:2]}, predict_fn=predict_fn)
