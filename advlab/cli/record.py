"""``advlab record``: copy a finished ``advlab train`` run's results into ``figures/full/``, with the
command that made them, so the tables of the README can be regenerated from the records."""
from __future__ import annotations

from pathlib import Path

from advlab.cli import common


def register(sub) -> None:
    record = common.add_command(sub, "record", "copy a finished train run's results into figures/full/", [
        "advlab record runs/mnist_full --name table1_mnist_cpu"],
        description="Writes NAME.json (evaluation, timings, training info, run config, the command) and "
                    "NAME.csv (the per-attack rows beside the paper's Table I) into figures/full/.")
    record.add_argument("run_folder", type=Path, metavar="RUN", help="the --out folder of `advlab train`")
    record.add_argument("--name", required=True, help="file name stem in figures/full/")
    record.add_argument("--command", default=None,
                        help="the command that produced the run (default: the one in the provenance of "
                             "RUN/evaluation.json)")
    record.add_argument("--note", default="")
    record.set_defaults(run=cmd_record)


def cmd_record(args) -> dict:
    from advlab import evaluation
    from advlab.config import CONFIG_FILE
    from advlab.experiments import paper_results
    from advlab.io import results
    from advlab.io.paths import figures_dir
    from advlab.io.provenance import read_provenance

    def load(name):
        path = args.run_folder / name
        return results.load_json(path.stem, path.parent) if path.is_file() else None

    ev = load("evaluation.json")
    if ev is None:
        raise SystemExit(f"error: {args.run_folder} has no evaluation.json; run `advlab evaluate --out "
                         f"{args.run_folder} ...` first")
    command = args.command or (read_provenance(args.run_folder / "evaluation.json") or {}).get("command")
    if not command:
        raise SystemExit(f"error: {args.run_folder}/evaluation.json has no provenance naming its command; "
                         "pass --command \"advlab train ...\"")
    record = {"command": command, "note": args.note, "evaluation": ev, "timings": load("timings.json"),
              "train_info": load("train_info.json"), "run_config": load(CONFIG_FILE)}
    folder = figures_dir() / "full"
    rows = evaluation.rows(ev)
    if ev.get("dataset") in paper_results.TABLE_I:
        rows = paper_results.compare_table_i(ev, ev["dataset"])
    paths = {"json": results.save_json(record, args.name, folder=folder),
             "csv": results.save_csv(rows, args.name, folder=folder)}
    for path in paths.values():
        print(path)
    return paths
