"""What happens to an adversarial image between the attacker and the defence.

* :func:`check_images`: the one validator for image batches used by the defence modules
  (NHWC float in [0, 1], finite, 1 or 3 channels).
* :func:`save_reload`: write each image as an 8-bit PNG or a JPEG and read it back. PNG only
  rounds to 256 grey levels; JPEG also removes high-frequency detail. The residual-cGAN paper
  noticed accuracy changes after saving adversarial images but did not measure them; the
  defence comparison does (modes ``save-png`` and ``save-jpeg``).
* :func:`print_scan`: a documented, seeded simulation of printing an image and scanning or
  photographing it again (the paper's stated next step). The chain, in order:

  1. **blur** - Gaussian, sigma = 1.0 * strength pixels (printer dot spread, scanner optics);
  2. **contrast change** - ``0.5 + c * (x - 0.5) + b`` with ``c = 1 - 0.25 * strength`` and a
     random brightness shift ``b ~ U(-0.05, 0.05) * strength`` (ink and paper do not reach pure
     black and white);
  3. **small affine warp** - rotation ``U(-3, 3) * strength`` degrees, scale
     ``1 + U(-0.04, 0.04) * strength``, shift ``U(-1, 1) * strength`` pixels (sheet placement);
  4. **sensor noise** - Gaussian, std 0.03 * strength (scanner/camera read noise);
  5. **JPEG** at quality ``95 - 20 * strength`` (how scans are stored);

  ``strength = 0`` returns the 8-bit-rounded input, ``strength = 1`` is a cheap office
  scanner, larger values are allowed (up to 3). Each image gets its own random draw from
  ``seed``, so results are reproducible.

Everything here works on numpy batches and never mutates its input.
"""
from __future__ import annotations

import io

import numpy as np

FORMATS = ("png", "jpeg")


def check_images(x, name: str = "x") -> np.ndarray:
    """Validate an image batch and return it as float32 NHWC (a copy is never needed: callers
    must not write into it). Raises ``ValueError`` with a clear message on bad input."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of images (N, H, W, C); got shape {x.shape}.")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (NHWC); got {x.shape[-1]} "
                         f"channels in shape {x.shape}. Channels-first input is not supported.")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be float images in [0, 1]; got dtype {x.dtype} "
                         "(divide uint8 images by 255).")
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(f"{name} must lie in [0, 1]; got range [{x.min():.3f}, {x.max():.3f}].")
    return x.astype(np.float32, copy=False)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round [0, 1] floats to 8-bit pixels exactly as an image file stores them."""
    return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)


def _encode_decode(img_u8: np.ndarray, fmt: str, quality: int) -> np.ndarray:
    from PIL import Image

    arr = img_u8[..., 0] if img_u8.shape[-1] == 1 else img_u8
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(arr).save(buf, format="PNG")
    else:
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf))
    return out.reshape(img_u8.shape)


def save_reload(x, fmt: str = "png", quality: int = 75, folder=None) -> np.ndarray:
    """Write every image as ``fmt`` (``"png"`` 8-bit lossless or ``"jpeg"`` at ``quality``) and
    read it back; returns float32 in [0, 1], same shape.

    By default the files are encoded in memory (byte-identical to writing them to disk).
    Pass ``folder`` to also keep the files (``img_00000.png`` ...) for inspection.
    """
    x = check_images(x)
    fmt = fmt.lower().replace("jpg", "jpeg")
    if fmt not in FORMATS:
        raise ValueError(f"Unknown image format {fmt!r}; use one of {FORMATS}.")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}.")
    u8 = to_uint8(x)
    out = np.stack([_encode_decode(img, fmt, quality) for img in u8]) if len(u8) else u8
    if folder is not None:
        from pathlib import Path
        from PIL import Image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ext = "png" if fmt == "png" else "jpg"
        for i, img in enumerate(u8):
            arr = img[..., 0] if img.shape[-1] == 1 else img
            kw = {} if fmt == "png" else {"quality": int(quality)}
            Image.fromarray(arr).save(folder / f"img_{i:05d}.{ext}", **kw)
    return out.astype(np.float32) / 255.0


def _affine(img: np.ndarray, angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    from scipy import ndimage

    h, w = img.shape[:2]
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / scale
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    offset = centre - rot @ (centre + np.asarray(shift))
    return np.stack([ndimage.affine_transform(img[..., c], rot, offset=offset, order=1,
                                              mode="nearest") for c in range(img.shape[-1])], -1)


def print_scan(x, strength: float = 1.0, seed: int = 0) -> np.ndarray:
    """Simulate printing and scanning each image (see the module docstring for the chain).

    Returns float32 in [0, 1], same shape; ``x`` is not modified.
    """
    from scipy import ndimage

    x = check_images(x)
    if not 0.0 <= float(strength) <= 3.0:
        raise ValueError(f"strength must be in [0, 3] (0 = none, 1 = office scanner); got {strength}.")
    s = float(strength)
    if s == 0.0:
        return to_uint8(x).astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    out = np.empty_like(x)
    for i, img in enumerate(x):
        img = ndimage.gaussian_filter(img, sigma=(1.0 * s, 1.0 * s, 0))
        img = 0.5 + (1.0 - 0.25 * s) * (img - 0.5) + rng.uniform(-0.05, 0.05) * s
        img = _affine(img, rng.uniform(-3, 3) * s, 1.0 + rng.uniform(-0.04, 0.04) * s,
                      tuple(rng.uniform(-1, 1, size=2) * s))
        img = img + rng.normal(0.0, 0.03 * s, size=img.shape)
        out[i] = np.clip(img, 0.0, 1.0)
    quality = int(round(max(5.0, 95 - 20 * s)))
    return save_reload(out, "jpeg", quality=quality)


def apply(mode: str, x, seed: int = 0, strength: float = 1.0, jpeg_quality: int = 75) -> np.ndarray:
    """The image channel named by an evaluation mode: ``save-png``, ``save-jpeg``, ``print-scan``."""
    if mode == "save-png":
        return save_reload(x, "png")
    if mode == "save-jpeg":
        return save_reload(x, "jpeg", quality=jpeg_quality)
    if mode == "print-scan":
        return print_scan(x, strength=strength, seed=seed)
    raise ValueError(f"Unknown channel mode {mode!r}; use save-png, save-jpeg or print-scan.")
