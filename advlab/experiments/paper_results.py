"""Published numbers the lab compares against (copied from the papers; cite them when shown).

Table I of Zhang, Yao, Sakurai, Saitoh, "Leveraging Generalizability of Image-to-Image
Translation for Enhanced Adversarial Defense" (arXiv 2504.01399): classifier accuracy (%) and
PSNR (dB) of attacked and purified test images, eps = 0.3 for MNIST/F-MNIST PGD, purification
time (ms/image, RTX A6000) and training epochs.
"""
from __future__ import annotations

CITATION = ("Zhang, Yao, Sakurai, Saitoh, 'Leveraging Generalizability of Image-to-Image "
            "Translation for Enhanced Adversarial Defense', arXiv 2504.01399, Table I")

# dataset -> clean accuracy, and per method -> attack -> (acc %, PSNR dB, ms/image, epochs)
TABLE_I = {
    "mnist": {
        "clean": 98.7,
        "attack": {"fgsm": (27.4, 30.31, None, None), "pgd": (9.3, 30.87, None, None),
                   "cw": (12.6, 29.39, None, None)},
        "defense_gan": {"fgsm": (96.6, 34.48, 2450, 30000), "pgd": (95.8, 34.16, 2450, 30000),
                        "cw": (96.5, 34.93, 2450, 30000)},
        "reconstruction": {"fgsm": (96.4, 34.73, 6.7, 1000), "pgd": (95.4, 34.65, 6.8, 1000),
                           "cw": (94.0, 34.42, 6.7, 1000)},
        "residual_cgan": {"fgsm": (98.6, 34.27, 2.1, 1000), "pgd": (97.8, 34.87, 2.2, 1000),
                          "cw": (98.0, 34.02, 2.2, 1000)},
    },
    "fashion_mnist": {
        "clean": 88.8,
        "attack": {"fgsm": (10.3, 29.98, None, None), "pgd": (2.0, 29.18, None, None),
                   "cw": (1.6, 27.38, None, None)},
        "defense_gan": {"fgsm": (87.5, 30.69, 2630, None), "pgd": (82.3, 30.53, 2635, None),
                        "cw": (74.0, 30.25, 2640, None)},
        "reconstruction": {"fgsm": (87.1, 31.93, 6.6, None), "pgd": (76.3, 31.85, 6.5, None),
                           "cw": (84.7, 31.57, 6.8, None)},
        "residual_cgan": {"fgsm": (88.3, 31.98, 2.1, 1000), "pgd": (87.3, 31.53, 2.1, 1000),
                          "cw": (79.1, 31.24, 2.2, 1000)},
    },
    "cifar10": {
        "clean": 89.6,
        "attack": {"fgsm": (8.3, 27.43, None, None), "pgd": (1.3, 27.89, None, None),
                   "cw": (0.2, 27.46, None, None)},
        "defense_gan": {"fgsm": (9.6, 29.46, 3750, None), "pgd": (9.5, 29.82, 3750, None),
                        "cw": (8.5, 29.57, 3750, None)},
        "reconstruction": {"fgsm": (90.3, 34.07, 28, 350), "pgd": (88.9, 33.97, 27, 350),
                           "cw": (87.5, 33.58, 28, 400)},
        "residual_cgan": {"fgsm": (94.6, 34.14, 3.5, 400), "pgd": (92.9, 33.82, 3.5, 400),
                          "cw": (91.6, 33.37, 3.5, 400)},
    },
}

# Table II (ImageNet): attack -> {target: (no defence %, residual cGAN %)}
TABLE_II_TARGETS = ("inceptionv3", "resnet50v2", "inceptionresnetv2")
TABLE_II = {
    "clean": ((76.8, 76.1), (67.0, 62.4), (79.3, 76.5)),
    "fgsm": ((25.8, 63.8), (17.8, 45.9), (21.0, 70.1)),
    "bim": ((1.8, 70.3), (0.0, 54.3), (7.8, 73.8)),
    "pgd": ((2.4, 69.8), (1.3, 53.8), (8.1, 73.7)),
    "mifgsm": ((0.1, 66.7), (0.0, 58.4), (8.5, 70.2)),
    "cw": ((0.0, 71.6), (0.0, 62.1), (4.4, 72.1)),
    "autoattack": ((0.5, 70.4), (0.0, 61.5), (0.4, 71.2)),
    "deepfool": ((0.4, 72.3), (0.0, 64.9), (0.7, 75.8)),
}


def table_i(dataset: str) -> dict:
    """Table I entries for ``dataset`` (``mnist``, ``fashion_mnist``, ``cifar10``)."""
    key = dataset.lower().replace("-", "_")
    if key not in TABLE_I:
        raise ValueError(f"Table I has no {dataset!r}; it covers {sorted(TABLE_I)}.")
    return TABLE_I[key]


def compare_table_i(result: dict, dataset: str) -> list[dict]:
    """Rows 'paper vs this run' for an :func:`advlab.evaluation.evaluate_purifier` result."""
    paper = table_i(dataset)
    rows = [{"images": "clean", "paper_no_defence_%": paper["clean"],
             "run_no_defence_%": round(100 * result["clean_accuracy"], 2),
             "run_purified_%": round(100 * result["clean_through_purifier"], 2)}]
    for attack, r in result["attacks"].items():
        p_att = paper["attack"].get(attack, (None, None))
        p_def = paper["residual_cgan"].get(attack, (None, None))
        rows.append({"images": attack, "paper_no_defence_%": p_att[0], "run_no_defence_%": round(100 * r["attacked_accuracy"], 2),
                     "paper_purified_%": p_def[0], "run_purified_%": round(100 * r["purified_accuracy"], 2),
                     "paper_psnr": p_def[1], "run_psnr": round(r["psnr_purified"], 2)})
    return rows


def table_ii_rows(target: str = "inceptionv3") -> list[dict]:
    """Table II for one ImageNet target as rows (attack, no defence %, residual cGAN %)."""
    if target not in TABLE_II_TARGETS:
        raise ValueError(f"Table II targets are {TABLE_II_TARGETS}, not {target!r}.")
    j = TABLE_II_TARGETS.index(target)
    return [{"images": a, "paper_no_defence_%": v[j][0], "paper_purified_%": v[j][1]} for a, v in TABLE_II.items()]
