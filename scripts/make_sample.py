"""Build the embedded data sample shipped in advlab/io/sample_data/ from the real IDX files.

    python scripts/make_sample.py --source ../shared/datasets

For MNIST and Fashion-MNIST it keeps, per class, 200 training and 100 test images chosen
uniformly at random (seed 0), in the files' original order, as uint8 in a compressed .npz,
together with the indices into the source files. Provenance (source files, their sha256,
seed, counts) goes to advlab/io/sample_data/PROVENANCE.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from advlab.io.data import _IDX_FILES, read_idx

OUT = Path(__file__).resolve().parents[1] / "advlab" / "io" / "sample_data"
FOLDERS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
PER_CLASS = {"train": 200, "test": 100}


def stratified(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--source", type=Path, required=True, help="folder with mnist/, fashion-mnist/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    provenance = {"script": "scripts/make_sample.py", "seed": args.seed,
                  "per_class": PER_CLASS, "datasets": {}}
    for name, folder in FOLDERS.items():
        rng = np.random.default_rng(args.seed)
        arrays, files = {}, {}
        for split, (img_file, lbl_file) in _IDX_FILES.items():
            x = read_idx(args.source / folder / img_file)
            y = read_idx(args.source / folder / lbl_file)
            idx = stratified(y, PER_CLASS[split], rng)
            arrays.update({f"x_{split}": x[idx], f"y_{split}": y[idx].astype(np.uint8),
                           f"idx_{split}": idx.astype(np.int32)})
            for f in (img_file, lbl_file):
                files[f] = hashlib.sha256((args.source / folder / f).read_bytes()).hexdigest()
        np.savez_compressed(OUT / f"{name}.npz", **arrays)
        provenance["datasets"][name] = {
            "source_folder": folder, "source_sha256": files,
            "n_train": int(len(arrays["idx_train"])), "n_test": int(len(arrays["idx_test"])),
            "bytes": (OUT / f"{name}.npz").stat().st_size,
        }
        print(name, provenance["datasets"][name]["bytes"], "bytes")
    (OUT / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")


if __name__ == "__main__":
    main()
