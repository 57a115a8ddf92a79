"""File readers of the datasets: IDX (MNIST, Fashion-MNIST), CIFAR-10's python pickle batches
(through a restricted unpickler: a pickle can run code when loaded, so only the types the real
files hold are admitted) and class folders of images. :func:`advlab.io.data.load` finds the
files; these functions only read them, and say which file is damaged when one is."""
from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np


class DatasetCorrupt(ValueError):
    """A dataset file exists but is truncated or not in the expected format."""


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


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
