"""Interactive explorers (ipywidgets) for the notebooks.

* :func:`attack_explorer`: pick an attack, an eps and an image; see the clean image, the
  adversarial image, the amplified perturbation and how the prediction changes.
* :func:`purification_browser`: the purifier's before/after browser (in
  :mod:`advlab.viz.purify_browser`), re-exported here.

The drawing is a plain function (:func:`explore`) so it can be used and tested without a
browser; the widgets only call it.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def explore(model, x, y, attack: str, eps: float | None, index: int, *, preset: str = "mnist",
            params: Mapping[str, Mapping] | None = None, class_names: Sequence[str] | None = None):
    """Attack image ``index`` with ``attack`` (at ``eps`` when the attack has one).

    Returns ``(fig, info)``: the 3-panel figure and a dict with the predictions, the
    model's confidence in each and the perturbation norms.
    """
    import tensorflow as tf

    from advlab import attacks
    from advlab.attacks.report import example_grid

    xi, yi = np.asarray(x[index:index + 1], np.float32), np.asarray(y[index:index + 1])
    kw = dict((params or {}).get(attack, {}))
    has_eps = "eps" in attacks.default_params(attack, preset)
    if has_eps and eps is not None:
        kw["eps"] = float(eps)
        defaults = attacks.default_params(attack, preset)
        if "eps_iter" in defaults and "eps_iter" not in kw:
            kw["eps_iter"] = min(defaults["eps_iter"], float(eps))
    x_adv = attacks.attack(attack, model, xi, yi, preset=preset, progress=False, **kw)
    probs = [tf.nn.softmax(model(v, training=False)).numpy()[0] for v in (xi, x_adv)]
    label = (lambda k: str(class_names[k]) if class_names is not None else str(k))
    info = {"attack": attack, "eps": kw.get("eps"), "true": label(int(yi[0])),
            "pred_clean": label(int(probs[0].argmax())), "conf_clean": float(probs[0].max()),
            "pred_adv": label(int(probs[1].argmax())), "conf_adv": float(probs[1].max()),
            "linf": float(np.abs(x_adv - xi).max()), "l2": float(np.sqrt(((x_adv - xi) ** 2).sum()))}
    info["fooled"] = info["pred_adv"] != info["true"]
    eps_txt = f", eps={kw['eps']:.3f}" if "eps" in kw else ""
    title = (f"{attack}{eps_txt}: {info['pred_clean']} ({info['conf_clean']:.0%}) -> "
             f"{info['pred_adv']} ({info['conf_adv']:.0%}), L2 {info['l2']:.2f}")
    fig = example_grid(model, xi, x_adv, yi, n=1, class_names=class_names, title=title)
    return fig, info


def attack_explorer(model, x, y, names: Sequence[str] | None = None, *, preset: str = "mnist",
                    eps_max: float = 0.5, params: Mapping[str, Mapping] | None = None,
                    class_names: Sequence[str] | None = None, static: bool = False):
    """An ipywidgets box: attack dropdown, eps slider, image slider and the live figure.

    ``params`` holds per-attack overrides (e.g. ``{"cw": {"steps": 30}}``) to keep slow attacks
    interactive. The eps slider is disabled for attacks without an eps (C&W, DeepFool). The
    returned box exposes ``attack``, ``eps``, ``index``, ``show()`` and ``last_info``. Where
    ipywidgets is missing (or ``static=True``) the same box holds static stand-ins
    (:mod:`advlab.viz.static_widgets`): the figure is drawn once, and setting a control's
    ``value`` draws the next.
    """
    from advlab import attacks
    from advlab.viz.static_widgets import controls, show_figure

    names = list(names or attacks.ATTACKS)
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"attack_explorer needs images and one label per image; got {len(x)} / {len(y)}.")
    start_eps = min(attacks.default_params(names[0], preset).get("eps", 0.1), eps_max)
    w = controls(static)
    attack = w.Dropdown(options=names, value=names[0], description="attack")
    eps = w.FloatSlider(value=start_eps, min=0.01, max=eps_max, step=0.01, description="eps",
                        continuous_update=False, readout_format=".2f")
    index = w.IntSlider(value=0, min=0, max=len(x) - 1, description="image", continuous_update=False)
    view = w.Image(format="png")
    box = w.VBox([w.HBox([attack, eps, index]), view])

    def show(*_):
        eps.disabled = "eps" not in attacks.default_params(attack.value, preset)
        fig, info = explore(model, x, y, attack.value, None if eps.disabled else eps.value,
                            index.value, preset=preset, params=params, class_names=class_names)
        box.last_info = info
        show_figure(view, fig)

    for control in (attack, eps, index):
        control.observe(show, names="value")
    box.attack, box.eps, box.index, box.show = attack, eps, index, show
    show()
    return box


def purification_browser(*args, **kwargs):
    """See :func:`advlab.viz.purify_browser.purification_browser`."""
    from advlab.viz.purify_browser import purification_browser as browser

    return browser(*args, **kwargs)
