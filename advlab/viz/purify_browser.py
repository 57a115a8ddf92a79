"""An ipywidgets browser over test images and attacks: pick an attack and an image, see
clean | attacked | perturbation x10 | purified | |purified - clean| with predicted labels and PSNR.

>>> browser = purification_browser(model, purifier, x, y, {"fgsm": x_fgsm, "pgd": x_pgd})  # doctest: +SKIP
>>> browser                                                                                 # doctest: +SKIP
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np


def purification_browser(classifier, purifier: Callable, x, y, x_adv_by_attack: Mapping[str, np.ndarray], *,
                         class_names: Sequence[str] | None = None, predict_fn: Callable | None = None,
                         static: bool = False):
    """Return an ipywidgets ``VBox`` (attack dropdown, image slider, the five-panel figure).

    Only the shown image is purified and classified, so browsing a large test set is instant.
    ``predict_fn(classifier, x) -> labels`` defaults to :func:`advlab.classifiers.predict_labels`.
    The returned box has ``attack``, ``index`` (the controls) and ``show()`` (redraw). Where
    ipywidgets is missing (or ``static=True``) the controls are static stand-ins
    (:mod:`advlab.viz.static_widgets`): setting ``box.index.value`` draws the next image.
    """
    from advlab.experiments import grids
    from advlab.viz.static_widgets import controls, show_figure

    if not x_adv_by_attack:
        raise ValueError("x_adv_by_attack must map at least one attack name to adversarial images")
    x, y = np.asarray(x), np.asarray(y)
    for name, xa in x_adv_by_attack.items():
        if np.shape(xa) != x.shape:
            raise ValueError(f"x_adv_by_attack[{name!r}] has shape {np.shape(xa)}, expected {x.shape}")
    w = controls(static)
    attack = w.Dropdown(options=list(x_adv_by_attack), description="attack")
    index = w.IntSlider(value=0, min=0, max=len(x) - 1, description="image", continuous_update=False)
    view = w.Image(format="png")

    def show(*_):
        i = index.value
        xa = np.asarray(x_adv_by_attack[attack.value])[i:i + 1]
        xc = x[i:i + 1]
        xp = np.asarray(purifier(xa))
        pred = [grids._predict(predict_fn, classifier, v) for v in (xc, xa, xp)]
        show_figure(view, grids.before_after_grid(xc, xa, xp, y[i:i + 1], *pred, n=1, class_names=class_names,
                                                  title=f"{attack.value}, test image {i}"))

    attack.observe(show, names="value")
    index.observe(show, names="value")
    box = w.VBox([w.HBox([attack, index]), view])
    box.attack, box.index, box.show = attack, index, show
    show()
    return box
