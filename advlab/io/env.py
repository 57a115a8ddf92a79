"""What this machine offers the lab: library versions, devices, scale and datasets."""
from __future__ import annotations

import dataclasses
import importlib.metadata as md
import os
import platform

PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "cleverhans",
            "adversarial-robustness-toolbox", "scikit-image", "matplotlib")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def report(verbose: bool = True) -> dict:
    """Collect (and print) versions, visible devices, the active scale and dataset locations."""
    import tensorflow as tf

    from advlab.io import data
    from advlab.config import get_config

    cfg = get_config()
    devices = {kind: [d.name for d in tf.config.list_physical_devices(kind)] for kind in ("CPU", "GPU")}
    datasets = {}
    for name, ds in data.DATASETS.items():
        where = data.locate(name, "test")
        if where is None and ds.has_sample:
            where = "embedded sample only (source='sample')"
        datasets[name] = where or "not available here"
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "devices": devices,
        "cpu_count": os.cpu_count(),
        "scale": cfg.scale,
        "config": dataclasses.asdict(cfg),
        "data_dir": os.environ.get(data.DATA_ENV),
        "datasets": datasets,
    }
    if verbose:
        print(f"Python {info['python']} on {info['platform']} ({info['cpu_count']} CPU cores)")
        for pkg, ver in info["packages"].items():
            print(f"  {pkg:32s} {ver}")
        print(f"Devices: CPU x{len(devices['CPU'])}, GPU x{len(devices['GPU'])}"
              + ("" if devices["GPU"] else "  (no GPU: everything runs on the CPU)"))
        print(f"Scale: {cfg.scale}  (set ADVLAB_SCALE=smoke|full)")
        print(f"ADVLAB_DATA_DIR: {info['data_dir'] or '(not set)'}")
        for name, where in datasets.items():
            print(f"  {name:14s} {where}")
    return info
