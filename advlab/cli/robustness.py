"""``advlab robustness``: one defence against a suite of attacks at one eps.

The defence is built exactly as the defence comparison builds it
(:func:`advlab.evaluation.comparison.build_defence`: learned ones trained once and cached, or the
generator of ``--purifier-run DIR``); the suite runs through
:func:`advlab.evaluation.robustness.evaluate_robustness`. The result and ``run_config.json`` go to
``--out`` (default: figures/).
"""
from __future__ import annotations

from advlab.cli import common
from advlab.cli.compare import DATASETS, add_defence_flags

SUITES = ("standard", "quick")


def register(sub) -> None:
    p = common.add_command(sub, "robustness", "evaluate one defence against a suite of attacks", [
        "advlab robustness --defence median --suite quick --eps 0.3 --n 200",
        "advlab robustness --defence residual_cgan --purifier-run runs/mnist_full --scale full --n 1000"],
        description=__doc__.split("\n\n")[1])
    common.add_shared(p, "dataset", "scale", "budget", "out", "seed", "data_dir", "quiet", "eps",
                      dataset={"choices": DATASETS},
                      out={"help": "folder for the result (default: figures/ or $ADVLAB_FIGURES_DIR)"},
                      eps={"default": 0.3, "help": "L-inf budget of every attack in the suite (default: %(default)s)"})
    add_defence_flags(p)
    p.add_argument("--defence", required=True,
                   help="a name in advlab.evaluation.comparison.DEFENCES, e.g. none, median, residual_cgan")
    p.add_argument("--suite", default="standard", choices=SUITES, help="default: %(default)s")
    p.add_argument("--n", dest="n_eval", type=int, default=None, metavar="N",
                   help="the first N test images (default: the comparison plan's n_eval)")
    p.set_defaults(run=cmd_robustness)


def _engine():
    try:
        from advlab.evaluation.robustness import evaluate_robustness
    except ImportError as err:
        raise SystemExit(f"error: advlab robustness needs advlab.evaluation.robustness.evaluate_robustness, "
                         f"which this version of advlab does not have ({err})") from err
    return evaluate_robustness


def cmd_robustness(args):
    from advlab.evaluation import comparison
    from advlab.experiments.pipeline import prepare
    from advlab.io import results
    from advlab.io.paths import figures_dir

    evaluate_robustness = _engine()
    if args.defence not in comparison.DEFENCES:
        raise SystemExit(f"error: unknown defence {args.defence!r}; choose from {comparison.DEFENCES}")
    if args.n_eval is not None and args.n_eval < 1:
        raise SystemExit(f"error: --n must be a positive integer, got {args.n_eval}")
    with common.environment(ADVLAB_FIGURES_DIR=args.out.resolve() if args.out else None):
        run = common.start(args, "comparison", folder=figures_dir())
        lab = prepare(args.dataset, run.cfg, verbose=not args.quiet)
        defence, _ = comparison.build_defence(args.defence, lab, run.plan)
        result = evaluate_robustness(defence, lab.classifier, lab.x_test, lab.y_test, args.eps, suite=args.suite)
        name = f"robustness_{args.defence}_{args.suite}_{args.dataset}_{run.cfg.scale}"
        print(result)
        record = result.to_dict() if hasattr(result, "to_dict") else result
        print(f"[advlab] saved {results.save_json(record, name, config=run)}")
    return result
