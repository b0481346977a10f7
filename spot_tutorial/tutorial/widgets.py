"""Small display helpers of the notebooks: matplotlib defaults, figures as PNG bytes, sliders.

The interactive explorers degrade to a static figure where ipywidgets is missing (CI, a plain
`jupyter nbconvert`), so every lesson runs everywhere.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Optional, Sequence


def _matplotlib_defaults() -> None:
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9,
                         "axes.titlesize": 9, "figure.max_open_warning": 0})


# ----------------------------------------------------------------------------------------------
# widgets: an Image widget redrawn by Python when a control changes
def figure_png(fig, dpi: int = 80, close: bool = True) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards, so it is not displayed twice)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    if close:
        plt.close(fig)
    return buffer.getvalue()


def show_widget(widget, summary: str) -> None:
    """Display a widget with a fixed plain-text alternative (what nbval compares and print shows)."""
    from IPython.display import display

    display({"application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": widget.model_id},
             "text/plain": summary}, raw=True)


def explorer(render: Callable[..., Any], controls: dict[str, Sequence[Any] | range],
             labels: Optional[dict[str, Callable[[Any], str]]] = None, play: Sequence[str] = (),
             title: str = "", dpi: int = 80):
    """An interactive figure: one control per keyword of ``render``, an image redrawn on change.

    ``render(**values)`` returns a matplotlib figure. ``controls`` maps each keyword to its
    choices: a ``range`` becomes a slider (plus a play button if listed in ``play``), any other
    sequence a drop-down (``labels[name](value)`` names its entries). Returns the widget box;
    show it with :func:`show_widget`. Needs a running kernel to react (Jupyter, Colab); the built
    book shows its first frame.
    """
    import ipywidgets as widgets

    labels = labels or {}
    inputs: dict[str, Any] = {}
    rows = []
    for name, choices in controls.items():
        if isinstance(choices, range):
            slider = widgets.IntSlider(value=choices.start, min=choices.start, max=choices[-1],
                                       step=choices.step, description=name, continuous_update=False)
            inputs[name] = slider
            row = [slider]
            if name in play:
                player = widgets.Play(value=choices.start, min=choices.start, max=choices[-1],
                                      step=choices.step, interval=400, description=f"play {name}")
                widgets.jslink((player, "value"), (slider, "value"))
                row.insert(0, player)
            rows.append(widgets.HBox(row))
        else:
            name_of = labels.get(name, str)
            options = [(name_of(value), value) for value in choices]
            dropdown = widgets.Dropdown(options=options, value=options[0][1], description=name)
            inputs[name] = dropdown
            rows.append(dropdown)
    image = widgets.Image(format="png")

    def redraw(*_):
        image.value = figure_png(render(**{name: w.value for name, w in inputs.items()}), dpi=dpi)

    for control in inputs.values():
        control.observe(redraw, names="value")
    redraw()
    header = [widgets.HTML(f"<b>{title}</b>")] if title else []
    return widgets.VBox(header + rows + [image])
