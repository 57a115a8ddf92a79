"""The exercises test the student: every check fails without its solution, fails with a wrong
answer, and passes with the solution; a notebook run leaves no TensorFlow/absl log lines or
tracebacks in its outputs.

One kernel per notebook (smoke scale): the cells before "## Exercises" run once; then, for each
exercise in order:

1. the student edition's stub (made by scripts/student_edition.py, as for ``make student``),
   then the check: it must fail;
2. the solution, then the check: it must pass;
3. for each answer name (a name in backticks in the exercise's text, like `eps_star` or
   `fgsm(...)`, that the solution binds), that answer made wrong (numbers and arrays shifted,
   functions returning shifted results, anything else replaced), then the check: it must
   fail. This is what catches a check that cannot fail, such as ``0 <= v <= 1``. The answer
   is restored afterwards.

``--durations=0`` shows the time per notebook.
"""
from __future__ import annotations

import ast
import copy
import importlib.util
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "scripts" / "student_edition.py")
edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edition)

# TensorFlow / absl / XLA log lines as they reach a notebook through the kernel's stderr.
# Tolerated, because only TF_ENABLE_ONEDNN_OPTS=0 silences them and that made CPU training
# 1.6-2x slower (see advlab/__init__.py): the oneDNN notice and absl's "before InitializeLog" line
# that TF 2.21 prints once at import whatever TF_CPP_MIN_LOG_LEVEL says, and grappler's
# "remapper failed" error when it cannot fuse a conv with the LeakyReLU gradient of the residual
# cGAN under oneDNN (it then leaves the graph unfused; training is unaffected), and oneDNN's
# "supports DT_INT32 only on platforms with AVX-512" notice when CAP-GAN's eager smoke training
# (notebook 10) runs an int32 op on a CPU without AVX-512 (TF then uses its own kernel).
KNOWN_STARTUP = re.compile(r"oneDNN custom operations are on|WARNING: All log messages before absl::InitializeLog"
                           r"|meta_optimizer\.cc:\d+\] remapper failed: INVALID_ARGUMENT: Mutation::Apply error"
                           r"|util\.cc:\d+\] oneDNN supports DT_INT32 only on platforms with AVX-512")
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "      # TF's own C++ format
    r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"    # absl / glog format
    r"|WARNING:absl:|WARNING: All log messages before absl|WARNING:tensorflow:"   # Python loggers
    r"|.*(oneDNN custom operations|cpu_feature_guard|remapper failed|tensorflow/core/))",
    re.MULTILINE)


def log_lines(text: str) -> list[str]:
    """The TensorFlow / absl log lines of ``text``, less the tolerated start-up ones."""
    return [line for line in text.splitlines() if LOG_LINE.match(line) and not KNOWN_STARTUP.search(line)]


# Makes an answer wrong in a way no correct check accepts (defined once in the kernel).
WRONG = """
def _exercise_wrong(v):
    import numpy as np
    if hasattr(v, "numpy") and not callable(v):  # a tensor
        v = v.numpy()
    if callable(v) and not isinstance(v, type):
        return lambda *a, **k: _exercise_wrong(v(*a, **k))
    if isinstance(v, (bool, np.bool_)):
        return not v
    if isinstance(v, (int, float, np.number)):
        return v + 0.05 + 0.1 * abs(v)
    if isinstance(v, np.ndarray) and v.dtype.kind == "b":
        return ~v
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
        return v + 1
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v + (0.05 + 0.1 * np.abs(v)).astype(v.dtype)
    if isinstance(v, (list, tuple)):
        return type(v)(_exercise_wrong(e) for e in v)
    if isinstance(v, dict):
        return {k: _exercise_wrong(e) for k, e in v.items()}
    if isinstance(v, str):
        return v + "?"
    return object()
"""


def _top_level_names(source: str) -> list[str]:
    """Names a cell binds at top level (assignments, def, class), in order, once each."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for target in getattr(node, "targets", None) or [node.target]:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


def answer_names(text: str, solution_source: str) -> list[str]:
    """Names the exercise asks for (in backticks, alone or called) that the solution binds."""
    asked = set(re.findall(r"`([A-Za-z_]\w*)(?:`|\()", text))
    return [n for n in _top_level_names(solution_source) if n in asked]


def internal_names_read(text: str, solution_source: str, check_source: str) -> list[str]:
    """Names the check reads but neither defines nor finds in the exercise's text, although the
    solution binds them: a student who solves the exercise differently has no such variable."""
    internal = set(_top_level_names(solution_source)) - set(answer_names(text, solution_source))
    tree = ast.parse(check_source)
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    loaded = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return sorted({n for n in loaded if n in internal - stored})


def _code(source):
    return nbformat.v4.new_code_cell(source)


def plan(nb):
    """Split a notebook into (setup cells, exercise steps). A step is ("run", cell) for cells
    of the exercises section that are neither solution nor check, or ("exercise", solution,
    check, text) for a solution, the first check after it and the exercise's markdown."""
    cells = nb.cells
    head = next((i for i, c in enumerate(cells)
                 if c.cell_type == "markdown" and "## Exercises" in c.source), None)
    if head is None:
        raise AssertionError("no '## Exercises' section")
    steps, pending, text = [], None, ""
    for cell in cells[head:]:
        if cell.cell_type != "code":
            text += "\n" + cell.source
            continue
        r = edition.role(cell)
        if r == "solution":
            assert pending is None, "two solutions in a row: each needs its own check"
            pending = cell
        elif r == "check":
            assert pending is not None, "a check without a solution before it"
            steps.append(("exercise", pending, cell, text))
            pending, text = None, ""
        else:
            steps.append(("run", cell))
    assert pending is None, "the last solution has no check"
    return cells[:head], steps


class Run:
    """What one kernel run of a notebook produced."""

    def __init__(self):
        self.seconds = 0.0
        self.setup_error = None
        # (number, error without solution or None, error with solution or None,
        #  {answer name: error with that answer wrong, or None})
        self.exercises = []
        self.internal = []  # "exercise: `name`" for checks that read a solution's internal variable
        self.clean_cells = []  # cells whose outputs must be clean (everything but the stubs' runs)
        self.kernel_stderr = ""  # what the kernel process wrote to its own stderr


def _execute(client, cell, index):
    from nbclient.exceptions import CellExecutionError

    try:
        client.execute_cell(cell, index)
    except CellExecutionError as err:
        return f"{err.ename}: {err.evalue}"
    return None


def run_notebook(path: Path, workdir: Path) -> Run:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    setup, steps = plan(nb)
    run = Run()
    start = time.perf_counter()
    # the client writes every executed cell back into its notebook at the given index: give it
    # a copy, so that the stubs and wrong-answer runs do not replace the cells of ``nb``
    client = NotebookClient(copy.deepcopy(nb), timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    log = workdir.parent / f"{path.stem}.kernel-stderr.txt"  # not in the cwd, which must stay empty
    # fd-level C++ logs reach the notebook only when they arrive before the cell finishes; the
    # kernel's own stderr has them all
    with open(log, "wb") as stderr, client.setup_kernel(stderr=stderr):
        for i, cell in enumerate(setup):
            if cell.cell_type != "code":
                continue
            run.clean_cells.append(cell)
            err = _execute(client, cell, i)
            if err:
                run.setup_error = f"cell {i}: {err}"
                break
        else:
            number = 0
            _execute(client, _code(WRONG), len(setup))
            for step in steps:
                if step[0] == "run":
                    run.clean_cells.append(step[1])
                    if err := _execute(client, step[1], nb.cells.index(step[1])):
                        run.setup_error = f"exercises section: {err}"
                        break
                    continue
                _, sol, chk, text = step
                number += 1
                index = nb.cells.index(sol)
                stub = copy.deepcopy(sol)
                stub.source = edition.stub_source(sol.source)
                _execute(client, stub, index)  # raises NotImplementedError, by design
                without = _execute(client, copy.deepcopy(chk), nb.cells.index(chk))
                with_sol = _execute(client, sol, index) or _execute(client, chk, nb.cells.index(chk))
                run.clean_cells += [sol, chk]
                wrong = {}
                for name in answer_names(text, sol.source) if not with_sol else ():
                    _execute(client, _code(f"_exercise_saved = {name}\n{name} = _exercise_wrong({name})"), index)
                    wrong[name] = _execute(client, copy.deepcopy(chk), nb.cells.index(chk))
                    _execute(client, _code(f"{name} = _exercise_saved\ndel _exercise_saved"), index)
                run.exercises.append((number, without, with_sol, wrong))
                run.internal += [f"{number}: `{n}`" for n in internal_names_read(text, sol.source, chk.source)]
    run.seconds = time.perf_counter() - start
    run.kernel_stderr = log.read_text(errors="replace")
    return run


# The kernel caches its classifiers, adversarial sets and purifiers where `--nbmake notebooks`
# looks for them: the cache the notebooks get without the fixtures' redirection. On a clean clone
# whichever of this run and the nbmake run comes first trains (under the cache's file locks, so
# two pytest-xdist workers never train one model twice); the other loads what it made and still
# executes every cell (06: 218 s -> 34 s).
NOTEBOOK_CACHE = str(Path(os.environ.get("ADVLAB_CACHE_DIR") or ROOT / ".cache").expanduser().resolve())


def executed(path: Path, monkeypatch) -> Run:
    """The notebook run with its exercises, in a kernel that caches where nbmake's does."""
    monkeypatch.setenv("ADVLAB_SCALE", "smoke")
    monkeypatch.setenv("ADVLAB_CACHE_DIR", NOTEBOOK_CACHE)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # importing advlab must set it
    # the kernel imports this checkout's advlab, not whichever one is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = run_notebook(path, Path.cwd())
    print(f"\n{path.name}: executed with exercises in {run.seconds:.0f} s")
    return run


def test_answer_names_are_asked_for_and_bound():
    text = "Write `fgsm(model, x, y, eps)`; store it in `acc` and the grid in `EPS_GRID`."
    src = "def fgsm(model, x, y, eps):\n    acc = x\n    return acc\ntmp = 1\nacc, other = 0.5, 2\n"
    assert answer_names(text, src) == ["fgsm", "acc"]


def test_a_check_may_not_read_what_only_the_solution_defines():
    solution = "both = mask_a & mask_b\nl2 = float(norms[both].mean())\n"
    assert internal_names_read("Store the median in `l2`.", solution, "assert both.sum() > 0 and l2 > 0") == ["both"]
    assert internal_names_read("Store `l2`.", solution, "both = 1\nassert l2 > both") == []


def test_log_lines_are_caught_and_the_known_start_up_ones_tolerated():
    text = ("accuracy 0.91\n"
            "WARNING:tensorflow:5 out of the last 5 calls to <function f> triggered tf.function retracing.\n"
            "2026-12-02 01:00:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.\n"
            "E0000 00:00:1700000000.000000  123 cuda_dnn.cc:8310] Unable to register cuDNN factory\n")
    assert [line[:20] for line in log_lines(text)] == ["WARNING:tensorflow:5", "E0000 00:00:17000000"]


def test_stub_is_nbgraders():
    src = "import numpy as np\n\ndef f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
    assert edition.stub_source(src) == (
        "import numpy as np\n\ndef f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()")
    assert edition.stub_source("answer = 42") == edition.STUB  # no markers: the whole cell
    with pytest.raises(ValueError, match="without"):
        edition.stub_source("### BEGIN SOLUTION\nx = 1\n")


def exercise_problems(run: Run) -> list[str]:
    """What is wrong with the exercises of ``run``: checks that cannot fail, or fail with the solution."""
    if run.setup_error is not None:
        return [f"the notebook failed before its exercises: {run.setup_error}"]
    if not run.exercises:
        return ["no exercises ran"]
    passing = [n for n, without, _, _ in run.exercises if without is None]
    broken = [f"{n}: {err}" for n, _, err, _ in run.exercises if err]
    unnamed = [n for n, _, err, wrong in run.exercises if not err and not wrong]
    fooled = [f"{n}: `{name}`" for n, _, _, wrong in run.exercises for name, e in wrong.items() if e is None]
    return ([f"exercise(s) {passing}: the check passes with the stub in place"] * bool(passing)
            + [f"the check fails with the solution: {broken}"] * bool(broken)
            + [f"exercise(s) {unnamed}: the text names no answer (in backticks) that the solution binds"] * bool(unnamed)
            + [f"the check passes with a wrong answer: {fooled}"] * bool(fooled)
            + [f"the check reads a variable only the solution defines: {run.internal}"] * bool(run.internal))


def output_problems(run: Run) -> list[str]:
    """Tracebacks and TensorFlow / absl log lines in the outputs of ``run`` and its kernel's stderr."""
    problems = []
    for cell in run.clean_cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"traceback {out.ename} in:\n{cell.source[:200]}")
            elif out.output_type == "stream":
                if "Traceback (most recent call last)" in out.text:
                    problems.append(f"traceback printed by:\n{cell.source[:200]}")
                lines = log_lines(out.text)
                if lines:
                    problems.append(f"{out.name} log lines {lines[:3]} from:\n{cell.source[:200]}")
    lines = log_lines(run.kernel_stderr)
    if lines:
        problems.append(f"the kernel logged {lines[:3]}")
    return problems


# One test per notebook for both properties: its kernel run is the suite's costliest item, and
# under pytest-xdist two tests sharing it could land on different workers and run it twice.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_checks_fail_without_solution_and_outputs_are_clean(path, monkeypatch):
    run = executed(path, monkeypatch)
    problems = exercise_problems(run) + output_problems(run)
    assert not problems, "\n\n".join(problems)
