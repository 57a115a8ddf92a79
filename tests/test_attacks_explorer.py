"""The attack explorer and the attack report helpers (figures, table rows)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from advlab import attacks  # noqa: E402
from advlab.viz import widgets
from advlab.attacks import report  # noqa: E402


def test_explore_reports_prediction_change(mnist_cnn, mnist_sample):
    _, _, x, y = mnist_sample
    fig, info = widgets.explore(mnist_cnn, x[:5], y[:5], "pgd", 0.3, 2, params={"pgd": {"nb_iter": 10, "eps_iter": 0.05}})
    assert info["linf"] <= 0.3 + 1e-6 and info["l2"] > 0 and info["eps"] == 0.3
    assert info["fooled"] and info["pred_adv"] != info["true"]
    assert len(fig.axes) == 3
    _, small = widgets.explore(mnist_cnn, x[:5], y[:5], "fgsm", 0.01, 2)
    assert small["linf"] <= 0.01 + 1e-6


@pytest.mark.parametrize("static", [False, True], ids=["ipywidgets", "static"])
def test_explorer_widget_updates(mnist_cnn, mnist_sample, static):
    _, _, x, y = mnist_sample
    box = widgets.attack_explorer(mnist_cnn, x[:4], y[:4], ["fgsm", "deepfool"],
                                  params={"deepfool": {"max_iter": 5}}, static=static)
    assert box.last_info["attack"] == "fgsm" and not box.eps.disabled
    box.eps.value = 0.2
    assert box.last_info["eps"] == pytest.approx(0.2)
    box.attack.value = "deepfool"
    assert box.eps.disabled and box.last_info["attack"] == "deepfool" and box.last_info["eps"] is None
    box.index.value = 3
    assert box.last_info["true"] == str(y[3])
    if not static:   # the figure is PNG bytes in an Image widget, redrawn on each change; no Output
        # widget, whose updates nbclient answers on the shell channel (a race that hung nbmake)
        import ipywidgets

        view = box.children[1]
        assert isinstance(view, ipywidgets.Image) and bytes(view.value).startswith(b"\x89PNG\r\n\x1a\n")
        before = bytes(view.value)
        box.index.value = 1
        assert bytes(view.value) != before
    with pytest.raises(ValueError, match="one label per image"):
        widgets.attack_explorer(mnist_cnn, x[:4], y[:3])


def test_example_grid_and_table(mnist_cnn, mnist_sample, tmp_path):
    _, _, x, y = mnist_sample
    s = attacks.adversarial_set("mnist", "test", "fgsm", mnist_cnn, x[:12], y[:12], eps=0.3,
                                progress=False, folder=tmp_path)
    fig = report.example_grid(mnist_cnn, s.x, s.x_adv, s.y, n=4, class_names=[str(i) for i in range(10)])
    assert len(fig.axes) == 12
    assert any("perturbation x" in ax.get_title() for ax in fig.axes)
    rows = report.results_table({"fgsm": s})
    assert rows[0]["attack"] == "fgsm" and rows[0]["n"] == 12 and rows[0]["linf_max"] <= 0.3 + 1e-6
    text = report.format_table(rows)
    assert "success_rate" in text.splitlines()[0] and "fgsm" in text


def test_explorer_degrades_to_static_figures_without_ipywidgets(mnist_cnn, mnist_sample, monkeypatch, capsys):
    import sys

    import matplotlib.pyplot as plt

    from advlab.viz import static_widgets

    _, _, x, y = mnist_sample
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` raises ImportError
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda fig: shown.append(fig.axes[0].get_title()))
    open_before = len(plt.get_fignums())
    box = widgets.attack_explorer(mnist_cnn, x[:4], y[:4], ["fgsm"])
    assert "ipywidgets is not available" in capsys.readouterr().out
    assert len(shown) == 1 and box.last_info["attack"] == "fgsm"   # one static figure, drawn at once
    box.index.value = 2                                           # a later cell draws the next one
    assert len(shown) == 2 and box.last_info["true"] == str(y[2])
    assert "image=2" in repr(box) and static_widgets.INSTALL_HINT in repr(box)
    assert len(plt.get_fignums()) == open_before                   # each shown figure is closed
    with pytest.raises(ValueError, match="outside"):
        box.index.value = 9
    with pytest.raises(ValueError, match="not one of"):
        box.attack.value = "no_such_attack"
