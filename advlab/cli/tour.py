"""``advlab tour``: run every notebook of the course top to bottom and keep the executed copies.

Executed notebooks go to ``--out`` (default build/tour/, outside notebooks/ so the course stays
output-free); figures go to figures/ as always. The terminal gets one line per notebook (name,
status, seconds); the kernels' own output (TensorFlow and absl warnings) and every cell's stderr
go to ``OUT/tour.log``, a summary to ``OUT/tour.json`` and the scale and budget to
``OUT/run_config.json``.
"""
from __future__ import annotations

import time
from pathlib import Path

from advlab.cli import common

LOG = "tour.log"


def register(sub) -> None:
    p = common.add_command(sub, "tour", "run every notebook top to bottom (executed copies in --out)", [
        "advlab tour                                  # smoke scale, a minute or two per notebook",
        "advlab tour --scale full --budget cpu --only 03 06 --out build/tour_full"],
        description=__doc__.split("\n\n")[1])
    common.add_shared(p, "scale", "budget", "out", "data_dir", "quiet",
                      out={"help": "folder for the executed notebooks, tour.log and tour.json "
                                   "(default: build/tour in the checkout)"},
                      quiet={"help": "print only the final summary line"})
    p.add_argument("--only", nargs="*", metavar="NN", help="notebook number prefixes, e.g. 00 03")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default: %(default)s)")
    p.set_defaults(run=cmd_tour)


def notebooks(root: Path, only=None) -> list[Path]:
    found = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = sorted(set(only) - {nb.name[:2] for nb in found})
        if unknown:
            raise SystemExit(f"error: no notebook numbered {unknown}; have {[nb.name[:2] for nb in found]}")
        found = [nb for nb in found if nb.name[:2] in only]
    return found


def _stderr_of(nb) -> list[str]:
    """Every stderr stream a cell wrote, as ``cell N: text`` blocks."""
    return [f"cell {i}: {out.get('text', '')}" for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.get("output_type") == "stream" and out.get("name") == "stderr"]


def cmd_tour(args) -> int:
    from advlab.config import get_config
    from advlab.io.paths import repo_root

    root = repo_root()
    if root is None:
        raise SystemExit("error: advlab tour runs the notebooks of a checkout (notebooks/), and this advlab "
                         "is installed without one")
    import nbformat
    from nbclient import NotebookClient

    scale = get_config(args.scale).scale
    out = (args.out or root / "build" / "tour").resolve()
    out.mkdir(parents=True, exist_ok=True)
    common.resolve_run(args, "scale").save(out)       # the scale and budget every notebook resolves
    todo = notebooks(root, args.only)
    summary, failed = [], 0
    with common.environment(ADVLAB_SCALE=scale, ADVLAB_BUDGET=args.budget), open(out / LOG, "w") as log:
        for path in todo:
            nb = nbformat.read(path, as_version=4)
            log.write(f"==== {path.name} (scale={scale})\n")
            log.flush()
            start, status = time.perf_counter(), "ok"
            try:   # the kernel's stdout/stderr (TF C++ and absl warnings) go to the log, not the terminal
                NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                               resources={"metadata": {"path": str(out)}}).execute(stdout=log, stderr=log)
            except Exception as err:  # noqa: BLE001 - report and go on with the next notebook
                status, failed = f"failed: {type(err).__name__}: {str(err)[-300:]}", failed + 1
            seconds = time.perf_counter() - start
            log.write("".join(f"[stderr] {text}\n" for text in _stderr_of(nb)))
            log.write(f"==== {path.name}: {status} in {seconds:.0f} s\n")
            log.flush()
            nbformat.write(nb, out / path.name)
            summary.append({"notebook": path.name, "scale": scale, "seconds": round(seconds, 1), "status": status})
            if not args.quiet:
                print(f"{path.name:<32} {status.splitlines()[0][:80]:<8} {seconds:6.0f} s", flush=True)
    from advlab.io.cache import save_json_atomic

    save_json_atomic(out / "tour.json", summary)
    print(f"[tour] {len(todo) - failed}/{len(todo)} notebooks ran at scale {scale}; executed copies in {out}, "
          f"warnings in {out / LOG}")
    return 1 if failed else 0
