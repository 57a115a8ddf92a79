"""Every number that a scale or a budget changes, in one table: read this file to answer
"what does ``--budget cpu`` change, and where is it set?".

``SCALES`` sizes data, classifier and attacks (:class:`advlab.config.LabConfig`). ``BUDGETS``
sizes the rest per job: ``smoke`` (always at smoke scale), and at full scale ``paper`` (the
papers' networks and data, meant for a GPU) or ``cpu`` (the same attacks, eps, iterations and
test sets, CPU-sized networks and training subsets: a full MNIST job in about an hour on two
cores) or ``fast`` (``cpu`` with 3 residual blocks instead of 7 at a quarter of the width: its
MNIST Table I purifier trains in under 10 minutes on two cores). Each budget has a ``purifier`` entry shared by every job, then per job (``table1``,
``experiments``, ``comparison``) entries for its ``cfg`` (LabConfig), ``purifier``
(CGANConfig), ``protocol`` or ``plan``. What a budget leaves out is the default of those
classes (the papers' settings). ``RECIPES`` adjusts a budget's job for one dataset. ``WIDTHS``
names more purifier widths (``advlab ... --size``).
:func:`advlab.config.resolve` and the CLI's ``--size`` are the readers; the measured
runs behind each choice are in figures/full/README.md.
"""

SCALES = {
    "smoke": dict(data_source="sample", n_train=1000, n_test=200, classifier_epochs=3, purifier_epochs=4,
                  attack_iters=10, cw_steps=30, batch_size=64, residual_blocks=1),
    "full": dict(data_source="auto", n_train=None, n_test=None, classifier_epochs=12, purifier_epochs=20,
                 attack_iters=40, cw_steps=100, batch_size=128, residual_blocks=7),
}

BUDGETS = {
    "smoke": {
        # a notebook trains in about a minute: narrow G and D, small batches, a larger step
        "purifier": dict(base_filters=16, disc_filters=16, batch_size=32, learning_rate=1e-3),
        "table1": {"protocol": dict(n_train=300, train_subset={"cw": 100}, cw_test=50)},
        "experiments": {
            "purifier": dict(max_filters=64, batch_size=16),
            "plan": dict(train_attacks=("fgsm", "pgd"), test_attacks=("fgsm", "pgd", "deepfool"),
                         transfer_archs=("mnist_cnn", "mnist_mlp"), transfer_attacks=("fgsm", "pgd"),
                         sweep_iterations=(5, 20), sweep_eps=(10 / 255, 0.3), eps_grid=(0.0, 0.1, 0.3),
                         sweep_n=100, ablation_blocks=(0, 1), ablation_attacks=("fgsm", "pgd"),
                         ablation_epochs=3, grid_n=4, purifier_epochs=4, versatile_all=False),
        },
        "comparison": {
            "plan": dict(gray_attacks=("fgsm", "pgd"), adaptive_attacks=("pgd",), n_eval=100, n_adaptive=50,
                         n_adaptive_slow=8, eot_samples=2, ae_epochs=3, capgan_epochs=1, capgan_pairs=256,
                         capgan_filters=8, capgan_eager=True, cgan_attacks=("fgsm", "pgd"),
                         versatile_attacks=("fgsm", "pgd")),
        },
    },
    "paper": {
        "purifier": {},
        "table1": {},
        "experiments": {},
        "comparison": {},
    },
    "cpu": {
        # the paper's architecture narrowed (32 -> 128 filters, 1 residual block per D conv): 7.8x
        # cheaper per training pair (figures/full/train_levers_paper.json); batch 64 at a higher
        # rate (pix2pix's 2e-4 was tuned for batch 1)
        "purifier": dict(base_filters=32, max_filters=128, disc_filters=32, disc_residual_blocks=1,
                         batch_size=64, learning_rate=5e-4),
        "table1": {
            # training time is the bound: every FGSM image, fewer for the slow PGD-40 and C&W
            "protocol": dict(n_train=None, train_subset={"pgd": 20000, "cw": 1000}),
            # the perceptual term in the classifier's features (VGG19's weights need the internet),
            # weighted so it is not a few percent of the loss; pix2pix's decay over the last half
            "purifier": dict(epochs=3, lr_decay_start=0.5, perceptual="classifier", lambda_perc=100.0),
        },
        "experiments": {
            # C&W and AutoAttack cost 0.1-0.5 s per image on a CPU: 2,000 pairs per purifier
            "cfg": dict(n_train=2000, n_test=1000, purifier_epochs=10),
            "plan": dict(sweep_n=500, sweep_iterations=(10, 20, 40, 70, 100), ablation_epochs=5,
                         versatile_all_epochs=4),
        },
        "comparison": {
            # the learned defences draw from the first 10k training images; PGD-40 is the adaptive attack
            "cfg": dict(n_train=10000),
            "plan": dict(purifier_epochs=6, versatile_pairs=3600, versatile_epochs=10, ae_epochs=10,
                         capgan_pairs=10000, capgan_epochs=3, adaptive_attacks=("pgd",)),
        },
    },
}

def _with(base: dict, cfg: dict) -> dict:
    """A copy of the budget ``base`` with every job's ``cfg`` entry updated with ``cfg``."""
    out = {"purifier": dict(base["purifier"])}
    for job in ("table1", "experiments", "comparison"):
        out[job] = {section: dict(values) for section, values in base[job].items()}
        out[job]["cfg"] = {**out[job].get("cfg", {}), **cfg}
    return out


# `advlab ... --size narrow`: the paper's generator and discriminator at a quarter of their width
WIDTHS = {"narrow": dict(base_filters=16, max_filters=64, disc_filters=16)}

# `fast`: the cpu budget with 3 residual blocks per level instead of 7 (the ablation's knee:
# figures/full/08_ablation_mnist_full*.csv) at the narrow width (16 -> 64 filters, D 16): 1/8 of
# the cpu generator's FLOPs and Table I's accuracies from 9.6 min of training instead of ~17-19
# (figures/full/table1_mnist_fast.json; each lever alone: benchmarks/train_levers.py)
BUDGETS["fast"] = _with(BUDGETS["cpu"], cfg=dict(residual_blocks=3))
BUDGETS["fast"]["purifier"].update(**WIDTHS["narrow"], disc_residual_blocks=None)   # D: as many blocks as G

# Per (dataset, budget), over that budget's job entries. Fashion-MNIST: a purifier trained on
# attacked clothes only over-corrects clean ones (-7.6 points clean); clean -> clean pairs, fewer
# PGD pairs and a 4th epoch give Table I at -1.4 (figures/full/table1_fashion_mnist_fast_default.json)
RECIPES = {("fashion_mnist", "fast"): {"table1": {
    "protocol": dict(clean_pairs=20000, train_subset={"pgd": 40000, "cw": 1000}), "purifier": dict(epochs=4)}}}
