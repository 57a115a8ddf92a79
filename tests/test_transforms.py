"""Save-and-reload and the print-and-scan simulation."""
import numpy as np
import pytest

from advlab.evaluation import transforms


@pytest.fixture(scope="module")
def x(mnist_sample):
    return mnist_sample[2][:6].copy()


def test_png_round_trip_is_8bit_rounding(x):
    rng = np.random.default_rng(0)
    xr = np.clip(x + rng.uniform(-0.01, 0.01, x.shape), 0, 1).astype(np.float32)
    out = transforms.save_reload(xr, "png")
    np.testing.assert_array_equal(out, np.rint(xr * 255) / np.float32(255))
    assert np.abs(out - xr).max() <= 0.5 / 255 + 1e-6


def test_jpeg_loses_more_than_png(x):
    png = transforms.save_reload(x, "png")
    jpg = transforms.save_reload(x, "jpeg", quality=30)
    assert jpg.shape == x.shape and 0 <= jpg.min() and jpg.max() <= 1
    assert np.abs(jpg - x).mean() > np.abs(png - x).mean()


def test_files_written_when_asked(x, tmp_path):
    transforms.save_reload(x[:2], "jpeg", folder=tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["img_00000.jpg", "img_00001.jpg"]


def test_print_scan_strength_knob_and_seed(x):
    before = x.copy()
    zero = transforms.print_scan(x, strength=0.0)
    np.testing.assert_array_equal(zero, transforms.save_reload(x, "png"))
    weak = transforms.print_scan(x, strength=0.3, seed=1)
    strong = transforms.print_scan(x, strength=1.5, seed=1)
    assert strong.shape == x.shape and 0 <= strong.min() and strong.max() <= 1
    assert np.abs(weak - x).mean() < np.abs(strong - x).mean()
    np.testing.assert_array_equal(weak, transforms.print_scan(x, strength=0.3, seed=1))
    assert not np.array_equal(weak, transforms.print_scan(x, strength=0.3, seed=2))
    np.testing.assert_array_equal(x, before)


def test_rgb_and_errors():
    rgb = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    assert transforms.print_scan(rgb).shape == rgb.shape
    assert transforms.save_reload(rgb, "jpg").shape == rgb.shape
    with pytest.raises(ValueError, match="format"):
        transforms.save_reload(rgb, "gif")
    with pytest.raises(ValueError, match="strength"):
        transforms.print_scan(rgb, strength=-1)
    with pytest.raises(ValueError, match="mode"):
        transforms.apply("scan", rgb)
    with pytest.raises(ValueError, match="batch"):
        transforms.save_reload(rgb[0])
