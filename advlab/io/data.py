"""Datasets: one entry point, :func:`load`, returning float32 NHWC images in [0, 1] and int labels.

Where the files come from (``source="auto"``, tried in this order, first hit wins):

1. an explicit ``data_dir`` argument, else ``$ADVLAB_DATA_DIR``: IDX ``.gz`` files for MNIST /
   Fashion-MNIST (in ``<dir>/mnist/``, ``<dir>/fashion-mnist/`` or ``<dir>`` itself), the
   python pickle batches for CIFAR-10 (``<dir>/cifar-10-batches-py/``), class sub-folders of
   images for ImageNet (``<dir>/imagenet/<split>/<class>/*.JPEG``);
2. standard local places: Keras' cache (``~/.keras/datasets``) and Debian's
   ``/usr/share/datasets/fashion-mnist``;
3. the real ``keras.datasets`` download (needs internet).

``source="sample"`` selects the small real subset shipped inside the package (MNIST and
Fashion-MNIST only); the smoke scale uses it so the course runs offline anywhere.
``source="local"`` is steps 1-2 only, ``source="download"`` step 3 only.

If nothing works, :class:`DatasetUnavailable` says where it looked and how to provide the
files. Other data is never substituted silently: stand-ins are only made by
:func:`synthetic_standin`, which says so loudly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advlab.io.readers import (_IDX_FILES, _IMAGE_SUFFIXES, DatasetCorrupt, UnsafePickle,  # noqa: F401 (public)
                               _read_cifar_batches, _read_idx_pair, _read_image_folder, load_pickle, read_idx)

DATA_ENV = "ADVLAB_DATA_DIR"
SOURCES = ("auto", "local", "sample", "download")
SPLITS = ("train", "test")
SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


class DatasetUnavailable(RuntimeError):
    """No copy of the dataset could be found or downloaded."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    folder_names: tuple[str, ...]   # sub-folders searched under a data dir
    has_sample: bool


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, MNIST_CLASSES, ("mnist",), True),
    "fashion_mnist": DatasetInfo("fashion_mnist", (28, 28, 1), 10, FASHION_CLASSES,
                                 ("fashion-mnist", "fashion_mnist"), True),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10, CIFAR10_CLASSES,
                           ("cifar-10-batches-py", "cifar10"), False),
    "imagenet": DatasetInfo("imagenet", (256, 256, 3), 1000, (), ("imagenet",), False),
}



def info(name: str) -> DatasetInfo:
    """Facts about a dataset; raises a clear error for unknown names."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
    return DATASETS[key]


# --------------------------------------------------------------------------- locating files
def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


def _candidate_dirs(ds: DatasetInfo, data_dir: str | Path | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    elif os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    places: list[Path] = []
    for root in roots:
        places += [root / sub for sub in ds.folder_names] + [root]
    places += [_keras_home() / sub for sub in ds.folder_names]
    if ds.name == "fashion_mnist":
        places.append(Path("/usr/share/datasets/fashion-mnist"))
    return places


def _find_local(ds: DatasetInfo, split: str, data_dir, tried: list[str]):
    """First local copy of ``ds``/``split`` as ``(kind, path)``, recording every place tried."""
    for place in _candidate_dirs(ds, data_dir):
        if ds.name in ("mnist", "fashion_mnist"):
            if all((place / f).is_file() for f in _IDX_FILES[split]):
                return "idx", place
            tried.append(f"{place}/{{{','.join(_IDX_FILES[split])}}}")
        elif ds.name == "cifar10":
            if (place / "test_batch").is_file():
                return "cifar", place
            tried.append(f"{place}/data_batch_1..5, test_batch")
        else:  # imagenet-style image folder
            for folder in (place / split, place / ("val" if split == "test" else split)):
                if folder.is_dir():
                    return "folder", folder
            tried.append(f"{place}/{split}/<class>/*.JPEG")
    if ds.name == "mnist":
        npz = _keras_home() / "mnist.npz"
        if npz.is_file():
            return "keras_npz", npz
        tried.append(str(npz))
    return None


def _load_local(ds: DatasetInfo, split: str, data_dir, image_size: int, tried: list[str]):
    found = _find_local(ds, split, data_dir, tried)
    if found is None:
        return None
    kind, path = found
    if kind == "idx":
        return (*_read_idx_pair(path, split), f"IDX files in {path}")
    if kind == "cifar":
        return (*_read_cifar_batches(path, split), f"CIFAR-10 batches in {path}")
    if kind == "folder":
        x, y, _ = _read_image_folder(path, image_size)
        return x, y, f"image folder {path}"
    with np.load(path) as f:
        return f[f"x_{split}"][..., None], f[f"y_{split}"], f"Keras cache {path}"


def locate(name: str, split: str = "test", data_dir: str | Path | None = None) -> str | None:
    """Where a local copy of the dataset is (without reading it), or ``None``."""
    ds = info(name)
    found = _find_local(ds, split, data_dir, [])
    return str(found[1]) if found is not None else None


def _load_download(ds: DatasetInfo, split: str, tried: list[str]):
    if ds.name == "imagenet":
        tried.append("download: ImageNet cannot be downloaded automatically (licence)")
        return None
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist,
              "cifar10": keras.datasets.cifar10}[ds.name]
    try:
        (x_tr, y_tr), (x_te, y_te) = loader.load_data()
    except Exception as err:  # noqa: BLE001 - any network/IO failure means "unavailable"
        tried.append(f"download with keras.datasets.{ds.name}.load_data() failed: "
                     f"{type(err).__name__}: {str(err)[:120]}")
        return None
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    if x.ndim == 3:
        x = x[..., None]
    return x, np.asarray(y).reshape(-1), f"keras.datasets.{ds.name} (downloaded)"


def _load_sample(ds: DatasetInfo, split: str):
    path = SAMPLE_DIR / f"{ds.name}.npz"
    if not ds.has_sample or not path.is_file():
        raise DatasetUnavailable(
            f"No embedded sample of {ds.name!r}: samples ship for "
            f"{[n for n, d in DATASETS.items() if d.has_sample]}. Use source='auto' with the "
            f"real files (see advlab.io.data docs) or advlab.io.data.synthetic_standin()."
        )
    with np.load(path) as f:
        return f[f"x_{split}"][..., None], f[f"y_{split}"], f"embedded sample {path.name}"


# --------------------------------------------------------------------------- public API
def load(name: str, split: str = "test", *, source: str = "auto",
         data_dir: str | Path | None = None, limit: int | None = None,
         image_size: int | None = None, return_info: bool = False, verbose: bool = True):
    """Load a dataset split as ``(x, y)``: float32 NHWC images in [0, 1] and int64 labels.

    Args:
        name: ``mnist``, ``fashion_mnist``, ``cifar10`` or ``imagenet`` (an image folder).
        split: ``train`` or ``test``.
        source: ``auto`` | ``local`` | ``sample`` | ``download`` (see module docs).
        data_dir: a folder to look in first (overrides ``$ADVLAB_DATA_DIR``).
        limit: keep only the first ``limit`` images (the files' own order).
        image_size: side length images are resized to (ImageNet folders; default 256).
        return_info: also return a dict saying where the data came from.
    """
    ds = info(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; use one of {SOURCES}.")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be a positive number of images, got {limit}.")
    image_size = int(image_size or ds.image_shape[0])

    tried: list[str] = []
    found = None
    if source == "sample":
        found = _load_sample(ds, split)
    if source in ("auto", "local"):
        found = _load_local(ds, split, data_dir, image_size, tried)
    if found is None and source in ("auto", "download"):
        found = _load_download(ds, split, tried)
    if found is None:
        raise DatasetUnavailable(
            f"Dataset {ds.name!r} ({split}) is not available (source={source!r}). Looked in:\n  - "
            + "\n  - ".join(tried)
            + f"\nProvide the files by setting {DATA_ENV} (or data_dir=) to a folder holding "
            + _how_to_provide(ds)
            + ", or run once on a machine with internet so Keras caches them in ~/.keras/datasets."
            + (" For an offline start use source='sample' (the small subset shipped with advlab)."
               if ds.has_sample else "")
        )
    x, y, where = found
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = _to_float(x, ds.name)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if verbose:
        print(f"[advlab.io.data] {ds.name}/{split}: {len(x)} images {x.shape[1:]} from {where}")
    if return_info:
        return x, y, {"dataset": ds.name, "split": split, "source": where, "n": len(x)}
    return x, y


def _how_to_provide(ds: DatasetInfo) -> str:
    if ds.name in ("mnist", "fashion_mnist"):
        return (f"'{ds.folder_names[0]}/' with the four IDX files "
                f"({', '.join(_IDX_FILES['train'] + _IDX_FILES['test'])})")
    if ds.name == "cifar10":
        return "'cifar-10-batches-py/' (the python version of CIFAR-10, unpacked)"
    return "'imagenet/train/<class>/' and 'imagenet/val/<class>/' image folders"


def _to_float(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DatasetCorrupt(f"{name}: expected uint8 pixels, found {x.dtype}.")
    return x.astype(np.float32) / np.float32(255.0)


def synthetic_standin(name: str, n: int = 64, seed: int = 0, image_size: int | None = None,
                      num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Clearly labelled synthetic images shaped like ``name`` (for offline smoke runs only).

    Each class is a distinct smooth colour pattern plus noise, so a classifier can learn it and
    attacks have something to break. It is **not** the dataset, and this function says so.
    """
    ds = info(name)
    side = int(image_size or ds.image_shape[0])
    channels = ds.image_shape[2]
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=n)
    yy, xx = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    patterns = []
    for c in range(num_classes):
        freq = 1 + c % 4
        phase = c * 0.7
        base = [0.5 + 0.4 * np.sin(2 * np.pi * freq * (xx * np.cos(phase + k) + yy * np.sin(phase + k)))
                for k in range(channels)]
        patterns.append(np.stack(base, -1))
    x = np.stack([patterns[c] for c in y]) + rng.normal(0, 0.08, size=(n, side, side, channels))
    print(f"[advlab.io.data] SYNTHETIC STAND-IN for {ds.name}: {n} generated images "
          f"{(side, side, channels)}, {num_classes} classes. Not real {ds.name} data; "
          f"numbers measured on it say nothing about {ds.name}.")
    return np.clip(x, 0, 1).astype(np.float32), y.astype(np.int64)
