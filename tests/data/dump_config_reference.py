"""Dump the effective run values of every job before the one-config refactor (run once at
commit 1f1babf; its output is tests/data/config_reference.json, which tests/test_config.py checks
``advlab.config.resolve`` against)."""
import dataclasses
import json
import sys

from advlab.config import CPU_PURIFIER_TRAINING, classifier_config, get_config
from advlab.evaluation import comparison
from advlab.experiments import pipeline
from advlab.purifiers.residual_cgan import CGANConfig, table_i_protocol


def plain(obj):
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return json.loads(json.dumps(obj))


def effective_cgan(cfg, kwargs, epochs):
    """What Lab.purifier -> train_purifier(x, y, cfg, epochs=..., **kwargs) builds."""
    return CGANConfig.for_scale(cfg).replace(residual_blocks=cfg.residual_blocks, epochs=epochs, **kwargs)


ref = {}
for scale, budget in (("smoke", "smoke"), ("full", "paper"), ("full", "cpu")):
    b = "cpu" if budget == "smoke" else budget          # smoke ignores the budget
    key = f"{scale}/{budget}"
    cfg = get_config(scale)
    size = "cpu" if budget == "cpu" else "paper"
    scale_purifier = CGANConfig.for_scale(cfg, size=size)
    if budget == "cpu":   # notebooks 04/05 ignored the budget; every other cpu job trains with this recipe
        scale_purifier = scale_purifier.replace(**CPU_PURIFIER_TRAINING)
    ref[f"scale:{key}"] = {"cfg": plain(cfg), "classifier": plain(classifier_config(cfg)),
                           "purifier": plain(scale_purifier)}
    p = table_i_protocol(cfg, b)
    ref[f"table1:{key}"] = {"cfg": plain(cfg), "classifier": plain(cfg), "purifier": plain(p.config),
                            "protocol": {"n_train": p.n_train, "train_subset": p.train_subset, "cw_test": p.cw_test}}
    cfg_e, plan_e = pipeline.configure(scale, b)
    kw = {**plan_e.purifier_kwargs, "perceptual": plan_e.perceptual}
    ref[f"experiments:{key}"] = {"cfg": plain(cfg_e), "classifier": plain(classifier_config(cfg_e)),
                                 "purifier": plain(effective_cgan(cfg_e, kw, plan_e.purifier_epochs or cfg_e.purifier_epochs)),
                                 "plan": plain(plan_e)}
    cfg_c, plan_c = comparison.configure(scale, b)
    base = pipeline.plan(cfg_c).purifier_kwargs if plan_c.purifier_kwargs is None else plan_c.purifier_kwargs
    ref[f"comparison:{key}"] = {"cfg": plain(cfg_c), "classifier": plain(classifier_config(cfg_c)),
                                "purifier": plain(effective_cgan(cfg_c, base, plan_c.purifier_epochs or cfg_c.purifier_epochs)),
                                "plan": plain(plan_c)}
with open(sys.argv[1], "w") as fh:
    json.dump(ref, fh, indent=1, sort_keys=True)
    fh.write("\n")
