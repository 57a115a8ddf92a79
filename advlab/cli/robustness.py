"""``advlab robustness``: one defence against a suite of attacks at one eps.

The defence is built exactly as the defence comparison builds it
(:func:`advlab.evaluation.comparison.build_defence`: learned ones trained once and cached, or the
generator of ``--purifier-run DIR``) in front of the target classifier, or of the adversarially
trained classifier of ``advlab advtrain --out DIR`` with ``--classifier-run DIR``; the suite runs
through :func:`advlab.evaluation.robustness.evaluate_robustness`, resumable stage by stage (rerun
the same command after an interruption). The report (``NAME.json``, ``.csv``, ``.png``) and
``NAME_run_config.json`` go to ``--out`` (default: figures/).
"""
from __future__ import annotations

from pathlib import Path

from advlab.cli import common
from advlab.cli.compare import DATASETS, add_defence_flags

SUITES = ("standard", "quick")


def register(sub) -> None:
    p = common.add_command(sub, "robustness", "evaluate one defence against a suite of attacks", [
        "advlab robustness --defence median --suite quick --eps 0.3 --n 200",
        "advlab robustness --defence tvm --scale full --n 1000 --cascade",
        "advlab robustness --defence residual_cgan --purifier-run runs/mnist_full --scale full --n 1000",
        "advlab robustness --defence none --classifier-run runs/mnist_adv_pgd --scale full --n 1000 "
        "--out figures/full --name robustness_mnist_adv_pgd",
        "advlab robustness --defence residual_cgan --purifier-run runs/mnist_robust_pur "
        "--classifier-run runs/mnist_robust_pur --scale full --n 1000"],
        description=__doc__.split("\n\n")[1])
    common.add_shared(p, "dataset", "scale", "budget", "out", "seed", "data_dir", "quiet", "eps",
                      dataset={"choices": DATASETS},
                      out={"help": "folder for the result (default: figures/ or $ADVLAB_FIGURES_DIR)"},
                      eps={"default": 0.3, "help": "L-inf budget of every attack in the suite (default: %(default)s)"})
    add_defence_flags(p)
    p.add_argument("--defence", required=True,
                   help="a name in advlab.evaluation.comparison.DEFENCES, e.g. none, median, residual_cgan")
    p.add_argument("--suite", default="standard", choices=SUITES, help="default: %(default)s")
    p.add_argument("--cascade", action="store_true",
                   help="attack each stage only on the images still robust after the earlier ones, in "
                        "checkpointed chunks (AutoAttack's standard version): the same worst case, far "
                        "cheaper for defences that break early; stage accuracies are then over the "
                        "images each stage attacked")
    p.add_argument("--n", dest="n_eval", type=int, default=None, metavar="N",
                   help="the first N test images (default: the comparison plan's n_eval)")
    p.add_argument("--classifier-run", type=Path, default=None, metavar="DIR",
                   help="defend the classifier of `advlab advtrain --out DIR` (DIR/classifier.keras) "
                        "instead of the target classifier")
    p.add_argument("--name", default=None, help="file name stem of the report (default: "
                                                "robustness_DEFENCE_SUITE_DATASET_SCALE)")
    p.set_defaults(run=cmd_robustness)

    t = common.add_command(sub, "robustness-table", "one table of saved robustness reports", [
        "advlab robustness-table figures/full/robustness_mnist_adv_pgd.json "
        "figures/full/robustness_mnist_median_plain.json --out figures/full --name robustness_table_mnist"],
        description="One row per report (`advlab robustness` JSON files, in the order given): every "
                    "stage's accuracy and seconds, the worst case with its 95 % interval, the strongest "
                    "stage and the flags. Writes NAME.csv and NAME.json to --out and prints the table.")
    t.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    t.add_argument("--out", type=Path, default=None, help="folder (default: figures/ or $ADVLAB_FIGURES_DIR)")
    t.add_argument("--name", default="robustness_table", help="file name stem (default: %(default)s)")
    t.add_argument("--comparison", type=Path, default=None, metavar="JSON",
                   help="a saved `advlab compare` result: reports of its defences in front of its classifier "
                        "get its clean, gray-box, e2e and BPDA columns beside the adaptive ones")
    t.set_defaults(run=cmd_table)


def _engine():
    try:
        from advlab.evaluation.robustness import evaluate_robustness
    except ImportError as err:
        raise SystemExit(f"error: advlab robustness needs advlab.evaluation.robustness.evaluate_robustness, "
                         f"which this version of advlab does not have ({err})") from err
    return evaluate_robustness


def cmd_robustness(args):
    from advlab.evaluation import comparison
    from advlab.io import results
    from advlab.io.paths import cache_dir, figures_dir

    evaluate_robustness = _engine()
    if args.defence not in comparison.DEFENCES:
        raise SystemExit(f"error: unknown defence {args.defence!r}; choose from {comparison.DEFENCES}")
    if args.n_eval is not None and args.n_eval < 1:
        raise SystemExit(f"error: --n must be a positive integer, got {args.n_eval}")
    _check_front(args)
    with common.environment(ADVLAB_FIGURES_DIR=args.out.resolve() if args.out else None):
        run = common.start(args, "comparison")
        defence, classifier, x, y = _defence_and_data(args, run)
        result = evaluate_robustness(defence, classifier, x, y, args.eps, suite=args.suite, seed=run.cfg.seed,
                                     out=cache_dir("robustness"), name=_label(args), cascade=args.cascade)
        print(result)
        name = args.name or f"robustness_{args.defence}_{args.suite}_{args.dataset}_{run.cfg.scale}"
        for kind, path in result.save(name, figures_dir()).items():
            print(f"[advlab] saved {kind}: {path}")
        print(f"[advlab] run config saved to {results.save_json(run.to_dict(), name + '_run_config', figures_dir())}")
    return result


def cmd_table(args):
    import json

    from advlab.evaluation.robust_report import summary_table
    from advlab.io import results

    records = {}
    comparison = None
    if args.comparison is not None:
        try:
            comparison = json.loads(args.comparison.read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: {args.comparison} is not a readable `advlab compare` result ({err})") from err
        if not (isinstance(comparison, dict) and comparison.get("rows")
                and isinstance(comparison.get("meta"), dict) and "classifier" in comparison["meta"]):
            raise SystemExit(f"error: {args.comparison} is not a readable `advlab compare` result "
                             "(no 'rows' and 'meta.classifier')")
    for path in args.reports:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: {path} is not a readable `advlab robustness` report ({err})") from err
        if isinstance(rec, dict) and {"job", "cfg"} <= rec.keys():
            # `advlab robustness` saves NAME_run_config.json beside each report: a glob takes both
            print(f"[advlab] skipped {path.name}: the run config saved beside a report, not a report")
            continue
        if not (isinstance(rec, dict) and {"worst_case", "stages"} <= rec.keys()):
            raise SystemExit(f"error: {path} is not a readable `advlab robustness` report "
                             "(no 'worst_case' and 'stages')")
        records[path.stem] = rec
    rows = summary_table(records, comparison)
    for r in rows:
        gray = r.get("comparison gray-box:pgd %")
        gray = "" if gray is None else f"gray-box PGD {gray:5.1f} %  "
        print(f"{r['defence']:<44} n={r['n']:<5} {gray}worst {r['worst case %']:5.1f} % "
              f"[{r['ci95 low %']:.1f}, {r['ci95 high %']:.1f}]  {r['strongest stage']:<14} "
              f"{r['attack minutes']:6.1f} min  flags: {r['flags']}")
    folder = args.out.resolve() if args.out else None
    print(f"[advlab] saved {results.save_csv(rows, args.name, folder)}")
    config = {"reports": [str(p) for p in args.reports if p.stem in records], "comparison": str(args.comparison)}
    print(f"[advlab] saved {results.save_json(rows, args.name, folder, config=config)}")
    return 0


def _label(args) -> str:
    return args.defence if args.classifier_run is None else f"{args.defence}+{args.classifier_run.name}"


def _defence_and_data(args, run):
    """(defence, classifier, x_test, y_test): the classifier of ``--classifier-run`` if given."""
    from advlab.evaluation import comparison

    trained = args.defence == "residual_cgan" and run.plan.cgan_run     # --purifier-run: nothing to train
    if args.classifier_run is None or not (args.defence in ("none",) + comparison.CLASSICAL or trained):
        from advlab.experiments.pipeline import prepare

        lab = prepare(args.dataset, run.cfg, verbose=not args.quiet)
        defence, _ = comparison.build_defence(args.defence, lab, run.plan)
        classifier = lab.classifier if args.classifier_run is None else _load_run(args.classifier_run)
        return defence, classifier, lab.x_test, lab.y_test
    from advlab.io import data

    defence, _ = comparison.build_defence(args.defence, None, run.plan)    # needs no data or classifier
    x, y = data.load(args.dataset, "test", source=run.cfg.data_source, limit=run.cfg.n_test,
                     verbose=not args.quiet)
    return defence, _load_run(args.classifier_run), x, y


def _check_front(args) -> None:
    """A classifier trained behind a fixed purifier (``advtrain --front``) is evaluated behind it."""
    import json

    info = args.classifier_run / "advtrain.json" if args.classifier_run is not None else None
    deploy_as = json.loads(info.read_text()).get("deploy_as") if info is not None and info.is_file() else None
    if deploy_as and args.defence != deploy_as:
        raise SystemExit(f"error: {args.classifier_run} was trained behind the {deploy_as!r} purifier "
                         f"(advtrain --front); evaluate it with --defence {deploy_as}, not {args.defence!r}")


def _load_run(folder: Path):
    from advlab.classifiers import load_classifier

    path = folder / "classifier.keras"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; train it with `advlab advtrain --out {folder}` "
                         f"(a run that was interrupted resumes when rerun)")
    return load_classifier(path)
