"""Where ipywidgets is missing, the explorers degrade to static figures.

:func:`controls` returns the ``ipywidgets`` module, or this module's stand-ins with the same
constructor names (``Dropdown``, ``FloatSlider``, ``IntSlider``, ``Image``, ``HBox``, ``VBox``).
A stand-in control holds a ``value`` and calls its observers when it changes, so the explorer
code runs unchanged: it draws its first figure as a plain (static) matplotlib output, and
setting ``box.index.value = 3`` in a later cell draws the next one. No sliders, nothing to
break on a page reload.
"""
from __future__ import annotations

import io
import types

INSTALL_HINT = "pip install ipywidgets (and reload the page) for the interactive controls"


def controls(static: bool = False):
    """``ipywidgets``, or the static stand-ins (with a printed note) where it cannot be imported
    or ``static`` is true (static exports, tests)."""
    if not static:
        try:
            import ipywidgets
        except ImportError:
            pass
        else:
            return ipywidgets
    print(f"ipywidgets is not available: showing static figures ({INSTALL_HINT}; meanwhile set "
          "the returned object's .value attributes, e.g. box.index.value = 3, to draw another).")
    return STATIC


class _Control:
    """One control: ``value``, ``disabled`` and ``observe(callback, names="value")``."""

    def __init__(self, value=None, options=None, description: str = "", min=None, max=None, **_):
        if value is None and options:
            value = list(options)[0]
        self.description, self.options, self.min, self.max = description, options, min, max
        self.disabled, self._value, self._observers = False, value, []

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, new):
        if self.options is not None and new not in self.options:
            raise ValueError(f"{self.description or 'control'}: {new!r} is not one of {list(self.options)}")
        if (self.min is not None and new < self.min) or (self.max is not None and new > self.max):
            raise ValueError(f"{self.description or 'control'}: {new!r} is outside [{self.min}, {self.max}]")
        old, self._value = self._value, new
        if new != old:
            for callback in self._observers:
                callback({"name": "value", "old": old, "new": new, "owner": self})

    def observe(self, callback, names="value"):
        if names != "value":
            raise ValueError(f"static controls only report 'value' changes, not {names!r}")
        self._observers.append(callback)

    def __repr__(self):
        return f"{self.description or type(self).__name__}={self._value!r}"


class _Image:
    """Stand-in of ``ipywidgets.Image``: :func:`show_figure` sends figures to the cell's output."""

    def __init__(self, **_):
        self.value = b""


def show_figure(view, fig) -> None:
    """Draw the matplotlib figure ``fig`` into ``view`` and close it. ``view`` is the explorer's
    ``w.Image(format="png")``: with ipywidgets it shows the figure as PNG bytes; the static
    stand-in sends the figure to the cell's output instead.

    Why not an ``Output`` widget and ``plt.show()`` inside it: while a cell runs, nbclient (and
    so nbmake and nbconvert) answers an Output widget's updates on the kernel's shell channel,
    where it is also waiting for the cell's reply; the race can hang a notebook run for good
    (jupyter/nbclient#312, seen here on notebook 01 under nbmake). An Image widget only sends.
    """
    import matplotlib.pyplot as plt

    try:
        if isinstance(view, _Image):
            try:
                from IPython.display import display
            except ImportError:     # plain Python: the backend shows it, if it can
                plt.figure(fig.number)
                plt.show()
            else:
                display(fig)        # this figure only (inline, plt.show() shows every open one)
        else:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", bbox_inches="tight")
            view.value = buffer.getvalue()
    finally:
        plt.close(fig)              # a figure that failed to draw is not left open either


class _Box:
    """Holds its children; its repr lists the controls' values (the figure is already shown)."""

    def __init__(self, children=()):
        self.children = list(children)

    def _controls(self):
        for child in self.children:
            if isinstance(child, _Box):
                yield from child._controls()
            elif isinstance(child, _Control):
                yield child

    def __repr__(self):
        values = ", ".join(repr(c) for c in self._controls())
        return f"static view ({values}); {INSTALL_HINT}"


STATIC = types.SimpleNamespace(Dropdown=_Control, FloatSlider=_Control, IntSlider=_Control,
                               Image=_Image, HBox=_Box, VBox=_Box)
