"""Run every notebook of the course top to bottom and keep the executed copies.

    python scripts/tour.py [--out build/tour] [--scale smoke] [--only 01 03]

Executed notebooks are written to ``--out`` (outside notebooks/, so the course stays
output-free); figures go to figures/ as always. A summary with per-notebook wall times is
printed and saved as ``<out>/tour.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the advlab notebook course.")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "tour")
    parser.add_argument("--scale", default=os.environ.get("ADVLAB_SCALE", "smoke"))
    parser.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 00 03")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient

    os.environ["ADVLAB_SCALE"] = args.scale
    args.out.mkdir(parents=True, exist_ok=True)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
    summary, failed = [], 0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        status = "ok"
        print(f"[tour] {path.name} (scale={args.scale}) ...", flush=True)
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(args.out)}}).execute()
        except Exception as err:  # noqa: BLE001 - report and go on with the next notebook
            status, failed = f"failed: {type(err).__name__}: {str(err)[-300:]}", failed + 1
        seconds = time.perf_counter() - start
        nbformat.write(nb, args.out / path.name)
        summary.append({"notebook": path.name, "scale": args.scale, "seconds": round(seconds, 1),
                        "status": status})
        print(f"[tour] {path.name}: {status} in {seconds:.0f} s", flush=True)
    (args.out / "tour.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[tour] {len(notebooks) - failed}/{len(notebooks)} notebooks ran; executed copies in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
