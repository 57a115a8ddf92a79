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

import gzip
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


class DatasetCorrupt(ValueError):
    """A dataset file exists but is truncated or not in the expected format."""


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

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def info(name: str) -> DatasetInfo:
    """Facts about a dataset; raises a clear error for unknown names."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
    return DATASETS[key]


# --------------------------------------------------------------------------- file readers
def _read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (EOFError, OSError, zlib.error) as err:
        raise DatasetCorrupt(
            f"{path} is not a complete gzip file ({err}). Delete it and download it again."
        ) from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) of unsigned bytes, checking its header and size."""
    path = Path(path)
    raw = _read_gz(path) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4:
        raise DatasetCorrupt(f"{path} is too short to be an IDX file ({len(raw)} bytes).")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise DatasetCorrupt(
            f"{path} has no IDX uint8 header (magic bytes {raw[:4].hex()}, expected 0000080N)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetCorrupt(f"{path} ends inside its IDX header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DatasetCorrupt(
            f"{path}: header announces {dims} = {expected} bytes of data but the file holds "
            f"{len(raw) - header}. The file is truncated or corrupt; download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lbl_name = _IDX_FILES[split]
    x, y = read_idx(folder / img_name), read_idx(folder / lbl_name)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DatasetCorrupt(
            f"{folder}: images {x.shape} and labels {y.shape} do not form a dataset."
        )
    return x[..., None], y


# The only globals the CIFAR-10 python batches reference: numpy arrays pickle as
# ``_reconstruct(ndarray, ...)`` + ``dtype`` (module ``numpy.core`` before numpy 2, ``numpy._core``
# after), or ``_frombuffer`` under protocol 5; ``_codecs.encode`` is how Python 3 writes bytes at
# protocols < 3 (a batch re-saved from Python 3) and ``scalar`` a numpy number (labels a script
# wrote as np.int64). Dicts, lists, str, bytes and ints need no global. All of these build data only.
_CIFAR_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class UnsafePickle(DatasetCorrupt):
    """A pickle file asks for a Python object that a dataset file never contains."""


class _DatasetUnpickler(pickle.Unpickler):
    """Python's documented restricted unpickler: ``find_class`` admits only :data:`_CIFAR_GLOBALS`."""

    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise UnsafePickle(
                f"{self.path} asks to load {module}.{name}, which no CIFAR-10 batch contains (only "
                f"dicts, lists, bytes, str, ints and numpy arrays). It was refused without running "
                f"anything: the file is not the official CIFAR-10 python version; download it again "
                f"from https://www.cs.toronto.edu/~kriz/cifar.html.")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = module.replace("numpy.core", "numpy._core")   # numpy 2 moved it (no shim warning)
        return super().find_class(module, name)


def load_pickle(path: str | Path):
    """Unpickle a dataset file through :class:`_DatasetUnpickler` (bytes keys, as written by Python 2)."""
    path = Path(path)
    with path.open("rb") as fh:
        return _DatasetUnpickler(fh, path).load()


def _read_cifar_batches(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = folder / name
        try:
            batch = load_pickle(path)
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except UnsafePickle:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError,
                IndexError) as err:
            raise DatasetCorrupt(f"{path} is not a CIFAR-10 python batch ({err!r}).") from err
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise DatasetCorrupt(f"{path}: data {data.shape} / labels {labels.shape} malformed.")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _read_image_folder(folder: Path, image_size: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Class sub-folders of images -> (uint8 images resized to a square, labels, class names).

    Sub-folders named by an integer use that integer as the label (e.g. ImageNet indices);
    otherwise labels follow the sorted folder names.
    """
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DatasetCorrupt(f"{folder} has no class sub-folders.")
    numeric = all(c.isdigit() for c in classes)
    xs, ys = [], []
    for index, cls in enumerate(classes):
        label = int(cls) if numeric else index
        for file in sorted((folder / cls).iterdir()):
            if file.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as im:
                    im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                    xs.append(np.asarray(im, dtype=np.uint8))
            except OSError as err:
                raise DatasetCorrupt(f"{file} is not a readable image ({err}).") from err
            ys.append(label)
    if not xs:
        raise DatasetCorrupt(f"{folder} has class folders but no images.")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), tuple(classes)


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
