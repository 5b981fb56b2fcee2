"""Figures for the projects' plots."""

from __future__ import annotations

from matplotlib.figure import Figure


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """(fig, axes) without pyplot: no global backend switch, so notebooks keep inline plotting."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)
