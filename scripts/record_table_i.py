#!/usr/bin/env python
"""Copy a finished ``python -m advlab train`` run's results into ``figures/full/`` (committed).

    python scripts/record_table_i.py runs/mnist_full --name table1_mnist_cpu --command "python -m advlab train ..."

Writes ``NAME.json`` (evaluation, timings, training config, the command) and ``NAME.csv`` (the
per-attack rows beside the paper's Table I).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the exact command that produced the run")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    from advlab import evaluation
    from advlab.experiments import paper_results
    from advlab.io import results
    from advlab.io.paths import figures_dir

    load = lambda f: json.loads((args.run / f).read_text()) if (args.run / f).is_file() else None  # noqa: E731
    ev = load("evaluation.json")
    if ev is None:
        raise SystemExit(f"error: {args.run} has no evaluation.json; run `python -m advlab evaluate` first")
    record = {"command": args.command, "note": args.note, "evaluation": ev, "timings": load("timings.json"),
              "train_info": load("train_info.json")}
    folder = figures_dir() / "full"
    rows = evaluation.rows(ev)
    if ev.get("dataset") in paper_results.TABLE_I:
        rows = paper_results.compare_table_i(ev, ev["dataset"])
    print(results.save_json(record, args.name, folder=folder))
    print(results.save_csv(rows, args.name, folder=folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
