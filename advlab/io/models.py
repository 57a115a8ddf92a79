"""Loading saved Keras models (classifiers, purifiers) safely, with errors that say what to do.

Every ``.keras`` file the lab reads goes through :func:`load_model`:

* Keras' ``safe_mode=True`` is always on, so a file cannot smuggle in Python code (a ``Lambda``
  layer holding pickled bytecode is refused by Keras itself);
* a missing, empty, truncated or corrupt (not a zip) file, and a foreign zip (one that is not a
  Keras archive), are reported as such, naming the file and how to rebuild it. Keras alone says
  "File not found ... Please ensure the file is an accessible `.keras` zip file" for a file
  that exists but is damaged.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

# The members every archive written by ``model.save("x.keras")`` holds (Keras 3 format).
KERAS_MEMBERS = ("config.json", "metadata.json")


class ModelFileCorrupt(ValueError):
    """A model file exists but is empty, truncated, corrupt or not a Keras archive."""


def check_model_file(path, what: str = "model", rebuild: str = "") -> Path:
    """Raise a clear error unless ``path`` looks like a complete ``.keras`` archive.

    ``FileNotFoundError`` for a missing file; :class:`ModelFileCorrupt` for an empty file, a
    truncated or corrupt one (no zip directory), a zip without the Keras members, or a member
    that fails its CRC check. ``rebuild`` (e.g. ``"train one with `python -m advlab train ...`"``)
    ends every message.
    """
    path = Path(path)
    hint = f" {rebuild}" if rebuild else ""
    if not path.exists():
        raise FileNotFoundError(f"No {what} file at {path}.{hint}")
    if not path.is_file():
        raise ModelFileCorrupt(f"The {what} path {path} is a folder, not a .keras file.{hint}")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileCorrupt(f"The {what} file {path} is empty (0 bytes; an interrupted save?). "
                               f"Delete it.{hint}")
    if not zipfile.is_zipfile(path):
        raise ModelFileCorrupt(f"The {what} file {path} ({size} bytes) is truncated or corrupt: it is "
                               f"not a zip archive, which every .keras file is. Delete it.{hint}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in KERAS_MEMBERS if m not in names]
            if missing:
                raise ModelFileCorrupt(
                    f"The {what} file {path} is a zip archive but not a Keras model: it lacks "
                    f"{missing} (it holds {sorted(names)[:5]}). Delete it.{hint}")
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise ModelFileCorrupt(f"The {what} file {path} cannot be read as a zip archive ({err}). "
                               f"Delete it.{hint}") from err
    if damaged is not None:
        raise ModelFileCorrupt(f"The {what} file {path} is corrupt: its member {damaged!r} fails its "
                               f"CRC check. Delete it.{hint}")
    return path


def load_model(path, what: str = "model", rebuild: str = "", compile: bool = False):
    """Load a ``.keras`` file with Keras' ``safe_mode=True`` after :func:`check_model_file`.

    ``what`` names the file's role in messages ("classifier", "purifier"); ``rebuild`` says
    how to make it again. Any failure inside Keras (damaged weights, unknown layer, a refused
    unsafe ``Lambda``) becomes :class:`ModelFileCorrupt` with Keras' own message.
    """
    path = check_model_file(path, what, rebuild)
    import keras

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - keras raises ValueError, KeyError, OSError, TypeError ...
        hint = f" {rebuild}" if rebuild else ""
        raise ModelFileCorrupt(f"Could not load the {what} file {path} ({type(err).__name__}: {err}). "
                               f"It is damaged or not a model this version of advlab saved.{hint}") from err
