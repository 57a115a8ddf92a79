"""Train-once-then-load residual-cGAN purifiers for the experiments.

A purifier is identified by data + classifier + training attacks + block count + epochs (the
key chosen by :meth:`advlab.experiments.pipeline.Lab.purifier`). Its folder under
``.cache/experiments/purifiers/<key>`` holds what :func:`advlab.training.train_purifier`
writes (generator, checkpoints for resuming) plus ``experiment_stats.json``: final-epoch losses
and seconds per epoch, which the ablation table reports.
"""
from __future__ import annotations

import json

STATS_FILE = "experiment_stats.json"


def stats_from_run(history: list[dict], info: dict) -> dict:
    """Final-epoch L1 / perceptual / adversarial losses and seconds per epoch of a finished run
    (``history``: rows of ``history.csv``; ``info``: ``train_info.json``)."""
    last = history[-1] if history else {}
    epochs = int(info.get("epochs") or len(history) or 0)
    seconds = info.get("train_time_s")
    get = lambda k: None if last.get(k) is None else float(last[k])  # noqa: E731
    return {"l1": get("l1"), "perceptual": get("perc"), "gen_loss": get("gan"), "g_total": get("g_loss"),
            "d_loss": get("d_loss"), "epochs": epochs,
            "seconds_per_epoch": None if seconds is None or not epochs else float(seconds) / epochs}


def load_or_train(lab, names, key: str, blocks: int, epochs: int, name: str, n_pairs: int | None = None,
                  stack: bool = False, **train_kwargs):
    """Return ``(purifier, stats)``: loaded if trained before, else trained now (and saved)."""
    from advlab.config import CGANConfig
    from advlab.io.cache import save_json_atomic
    from advlab.io.paths import cache_dir
    from advlab.purifiers import residual_cgan
    from advlab.training import train_purifier

    out = cache_dir("experiments", "purifiers", key)
    stats_path = out / STATS_FILE
    if stats_path.is_file() and (out / "generator.keras").is_file():
        purifier = residual_cgan.load_purifier(out, name=name)
        if lab.verbose:
            print(f"[experiments] loaded purifier {name} ({blocks} blocks, {epochs} epochs) from {out}")
        return purifier, json.loads(stats_path.read_text())

    x_adv, x_clean = lab.training_pairs(names, limit=n_pairs, stack=stack)
    # the scale's purifier with the plan's fields (width, batch, perceptual, schedule ...) on top
    config = CGANConfig.for_scale(lab.cfg).replace(**{"residual_blocks": blocks, "epochs": epochs, **train_kwargs})
    if lab.verbose:
        print(f"[experiments] training purifier {name} on {len(x_adv)} pairs of {'+'.join(names)} "
              f"({blocks} residual blocks, {epochs} epochs) -> {out}")
    purifier = train_purifier(x_adv, x_clean, config, out, classifier=lab.classifier,
                              verbose=2 if lab.verbose else 0, samples=0)
    stats = stats_from_run(purifier.history, purifier.info)
    stats["n_pairs"] = int(len(x_adv))
    purifier.name = name
    purifier.trainer = None          # keep only the generator in memory
    save_json_atomic(stats_path, stats)
    return purifier, stats
