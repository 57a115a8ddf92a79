"""One resolved config per run: the budgets table, ``config.resolve`` and ``run_config.json``."""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from advlab import budgets, config

REFERENCE = json.loads((Path(__file__).parent / "data" / "config_reference.json").read_text())
# fields added since the reference was dumped, at their defaults (the CLI's --attacks / --eps went into the protocol)
ADDED = {"protocol": {"attacks": ["fgsm", "pgd", "cw"], "eps": None, "clean_pairs": 0, "test_subset": {}},
         "purifier": {"seed": 0},
         "plan": {"ablation_seeds": None}}


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_resolved_values_equal_those_before_the_refactor(key):
    """tests/data/config_reference.json was dumped from the separate knob objects (get_config,
    table_i_protocol, pipeline.configure, comparison.configure) before they became one table
    (tests/data/dump_config_reference.py in commit 0229261)."""
    job, where = key.split(":")
    scale, budget = where.split("/")
    got = config.resolve(scale, None if budget == "smoke" else budget, job=job).to_dict()
    want = REFERENCE[key]
    for section in ("cfg", "classifier", "purifier", "protocol"):
        if section in want:
            assert got[section] == {**want[section], **ADDED.get(section, {})}, section
    if "plan" in want:
        plan = dict(got["plan"])
        expected = {**want["plan"], **{k: v for k, v in ADDED["plan"].items() if k in plan}}
        if expected["purifier_kwargs"] is None:
            # was "None: the experiments plan's"; now written out (what it trains is checked above)
            del plan["purifier_kwargs"], expected["purifier_kwargs"]
        assert plan == expected


@pytest.mark.parametrize("job", config.JOBS)
@pytest.mark.parametrize("scale,budget", [("smoke", None), ("full", "paper"), ("full", "cpu")])
def test_run_config_round_trips_through_json(tmp_path, job, scale, budget):
    run = config.resolve(scale, budget, job=job, dataset="mnist")
    assert config.RunConfig.from_dict(run.to_dict()) == run
    path = run.save(tmp_path / "out")
    assert path.name == "run_config.json"
    assert config.RunConfig.load(path.parent) == run == config.RunConfig.load(path)
    json.loads(path.read_text())         # plain JSON


def test_from_dict_rejects_what_is_not_a_run_config():
    data = config.resolve("smoke", job="table1").to_dict()
    with pytest.raises(ValueError, match="missing"):
        config.RunConfig.from_dict({k: v for k, v in data.items() if k != "purifier"})
    with pytest.raises(ValueError, match="Protocol has no field.*cw_tset"):
        config.RunConfig.from_dict({**data, "protocol": {**data["protocol"], "cw_tset": 1}})
    with pytest.raises(ValueError, match="job must be one of"):
        config.RunConfig.from_dict({**data, "job": "table9"})


def test_summary_is_short_and_names_the_run():
    text = str(config.resolve("full", "cpu", job="table1", dataset="mnist"))
    assert text.startswith("run config: job=table1 scale=full budget=cpu dataset=mnist")
    assert "train_subset={'pgd': 20000, 'cw': 1000}" in text and len(text.splitlines()) <= 8


def test_overrides_reach_their_section_and_what_follows_from_it():
    run = config.resolve("smoke", job="experiments", n_test=50, sweep_n=7, base_filters=8, cfg__batch_size=32)
    assert (run.cfg.n_test, run.cfg.batch_size, run.plan.sweep_n) == (50, 32, 7)
    assert run.plan.purifier_kwargs["base_filters"] == 8 == run.purifier.base_filters   # what the lab trains
    assert run.classifier.n_test == budgets.SCALES["smoke"]["n_test"]                   # the scale's classifier
    run = config.resolve("full", "cpu", job="table1", purifier__epochs=5, cfg__purifier_epochs=9, cw_test=10)
    assert (run.purifier.epochs, run.cfg.purifier_epochs, run.protocol.cw_test) == (5, 9, 10)
    run = config.resolve("full", "paper", job="experiments", purifier__epochs=2, purifier__residual_blocks=3)
    assert run.plan.purifier_epochs == 2 and run.purifier.epochs == 2
    assert run.cfg.residual_blocks == 3 == run.purifier.residual_blocks and not run.plan.purifier_kwargs


def test_bad_overrides_and_arguments_say_what_is_valid():
    with pytest.raises(TypeError, match="valid: .*n_test"):
        config.resolve("smoke", job="table1", n_tset=5)
    with pytest.raises(TypeError, match="cfg__batch_size"):
        config.resolve("smoke", batch_size=5)            # LabConfig and CGANConfig both have it
    with pytest.raises(TypeError, match="valid"):
        config.resolve("smoke", job="scale", sweep_n=5)  # a plan field, and this job has no plan
    with pytest.raises(ValueError, match="choose one of"):
        config.resolve("smoke", job="tabel1")
    with pytest.raises(ValueError, match="choose one of"):
        config.resolve("full", "gpu")
    with pytest.raises(ValueError, match="base_filters"):
        config.resolve("smoke", base_filters=0)          # CGANConfig checks itself
    with pytest.raises(TypeError, match="fields are"):
        config.get_config("smoke").replace(n_tset=1)


def test_budget_table_is_one_short_file_with_each_cpu_setting_once():
    source = Path(budgets.__file__).read_text()
    assert source.count("\n") < 110
    cpu_node = next(v for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Dict)
                    for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "cpu")
    written = []            # every (name, value) written inside the cpu block
    for node in ast.walk(cpu_node):
        if isinstance(node, ast.Call):
            written += [(kw.arg, ast.literal_eval(kw.value)) for kw in node.keywords]
    entries = [d for name, entry in budgets.BUDGETS["cpu"].items()
               for d in ([entry] if name == "purifier" else entry.values())]
    leaves = [(k, v) for d in entries for k, v in d.items()]
    assert leaves and sorted(map(repr, leaves)) == sorted(map(repr, written))
    assert all(written.count(pair) == 1 for pair in written), "a cpu setting is written twice"


def test_a_dataset_recipe_changes_its_dataset_and_budget_only_and_flags_still_win():
    fashion = config.resolve("full", "fast", job="table1", dataset="fashion_mnist")
    assert fashion.protocol.clean_pairs == 20000 and fashion.purifier.epochs == 4
    assert fashion.protocol.train_subset == {"pgd": 40000, "cw": 1000}
    assert fashion.purifier.residual_blocks == 3 and fashion.purifier.lambda_perc == 100.0   # the rest: fast's
    for dataset, budget in [("mnist", "fast"), ("fashion_mnist", "cpu"), (None, "fast")]:
        run = config.resolve("full", budget, job="table1", dataset=dataset)
        assert run.protocol.clean_pairs == 0 and run.purifier.epochs == 3, (dataset, budget)
        assert run.protocol.train_subset == {"pgd": 20000, "cw": 1000}
    assert config.resolve("full", "fast", job="experiments", dataset="fashion_mnist").plan == \
        config.resolve("full", "fast", job="experiments", dataset="mnist").plan     # Table I only
    flags = config.resolve("full", "fast", job="table1", dataset="fashion_mnist", clean_pairs=0, purifier__epochs=3)
    assert (flags.protocol.clean_pairs, flags.purifier.epochs) == (0, 3)
    fashion.protocol.train_subset["pgd"] = 1      # a caller's change stays in its own run
    assert config.resolve("full", "fast", job="table1", dataset="fashion_mnist").protocol.train_subset["pgd"] == 40000
    run.protocol.train_subset["pgd"] = 1
    assert config.resolve("full", "fast", job="table1").protocol.train_subset["pgd"] == 20000


def test_the_old_knob_objects_are_gone():
    from advlab.evaluation import comparison
    from advlab.experiments import pipeline
    from advlab.purifiers import residual_cgan

    for module, names in ((config, ("PURIFIER_SIZES", "CPU_PURIFIER_TRAINING", "classifier_config", "PRESETS")),
                          (residual_cgan, ("SIZES", "TABLE_I_CPU", "TABLE_I_CPU_CONFIG", "TableIProtocol",
                                           "table_i_protocol", "_check_params")),
                          (pipeline, ("NARROW", "CPU_BUDGET", "CPU_BUDGET_CFG", "PLANS")),
                          (comparison, ("CPU_BUDGET", "CPU_BUDGET_N_TRAIN", "PLANS"))):
        assert not [n for n in names if hasattr(module, n)], module.__name__


def test_every_section_is_a_frozen_dataclass():
    run = config.resolve("smoke", job="comparison")
    for section in (run, run.cfg, run.purifier, run.plan):
        with pytest.raises(dataclasses.FrozenInstanceError):
            section.seed = 1
