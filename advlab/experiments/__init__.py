"""The papers' analyses as functions: generalizability matrix, cross-model transfer, robustness
sweeps and the residual-block ablation.

Every runner takes callables (``train_fn``, ``attack_fn``, ``accuracy_fn``) so it is testable on
tiny stand-ins, returns plain tables/rows, and resumes from a JSON checkpoint when interrupted.
:mod:`advlab.experiments.pipeline` wires them to the real data, classifiers, attacks and the
residual-cGAN purifier (with on-disk caches); ``advlab experiment NAME`` runs each table in
one command. Importing this package does not import TensorFlow.
"""
from advlab.experiments.ablation import PAPER_BLOCKS, plot_ablation, residual_block_ablation, seed_summary
from advlab.experiments.generalizability import (GeneralizabilityTable, g_metric, generalizability_matrix,
                                                 plot_matrix, plot_transfer, transfer_frame, transfer_table)
from advlab.experiments.runstate import Checkpoint
from advlab.experiments.sweeps import (MNIST_EPS, PAPER_EPS, PAPER_ITERATIONS, eps_label, eps_sweep,
                                       iteration_sweep, plot_eps_sweep, plot_iteration_sweep, save_sweep)

__all__ = [
    "Checkpoint", "GeneralizabilityTable", "MNIST_EPS", "PAPER_BLOCKS", "PAPER_EPS", "PAPER_ITERATIONS",
    "eps_label", "eps_sweep", "g_metric", "generalizability_matrix", "iteration_sweep", "plot_ablation",
    "plot_eps_sweep", "plot_iteration_sweep", "plot_matrix", "plot_transfer", "residual_block_ablation",
    "save_sweep", "seed_summary", "transfer_frame", "transfer_table",
]
