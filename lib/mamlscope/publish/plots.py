"""Shared figure helpers (matplotlib + seaborn), one function per kind of figure.

Every figure is drawn for the book's page: at most :data:`PAGE_WIDTH` inches wide, text of at least
:data:`FONT_PT` points, :data:`DPI` dots per inch, the Okabe–Ito palette (:data:`PALETTE`, with a
marker per series so that no line is told apart by colour alone), and one legend per figure that
names every line, line style and band. :func:`page_figure` makes the figure; :func:`readability`
says how large its smallest text comes out in the book's column (:data:`COLUMN_PX`), which
``tests/test_figures.py`` checks for every function here.
"""
from __future__ import annotations

import base64
import copy
import html
import math
import re

import matplotlib as mpl
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import seaborn as sns
from matplotlib.colors import LinearSegmentedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

from mamlscope.core.runs import Run
from mamlscope.metrics import mds_embedding
from mamlscope.stats import mean_ci

#: The widest a figure is drawn (inches); the reader's requirement is about 8–9 in.
PAGE_WIDTH = 8.5
#: Width of the book's content column in CSS px. sphinx-book-theme caps the article at 60em
#: (pydata-sphinx-theme's ``.bd-article-container``, 960 px at 16 px) less 2rem of padding each
#: side (896 px), narrower beside the secondary sidebar; a reader measured about 790 px, the
#: figure's scale used here. Images are shrunk to the column (``max-width: 100%``), never grown.
COLUMN_PX = 790
#: The content column at a phone's 390 px viewport (CSS px), and the width a figure's one-column
#: rendition is drawn at for it (inches).
PHONE_COLUMN_PX = 350
PHONE_WIDTH = 4.2
#: A figure of more panels than this also gets a one-column rendition, shown on narrow screens
#: (:data:`NARROW_MEDIA`) so that no panel is drawn narrower than about 300 px there.
REFLOW_PANELS = 3
NARROW_MEDIA = "(max-width: 720px)"
#: The smallest text, in CSS px once the figure is shown in the column.
MIN_TEXT_PX = 9
#: The smallest font size used (points).
FONT_PT = 9
#: Resolution of PNG output (the inline backend saves at the figure's dpi).
DPI = 150
#: Okabe & Ito's colour-blind-safe palette, ordered so that the first four colours (the most
#: lines any figure here draws in one panel) are pairwise far apart: blue, orange, bluish green,
#: reddish purple, then sky blue, vermilion, black, yellow.
OKABE_ITO = {"blue": "#0072B2", "orange": "#E69F00", "bluish green": "#009E73", "reddish purple": "#CC79A7",
             "sky blue": "#56B4E9", "vermilion": "#D55E00", "black": "#000000", "yellow": "#F0E442"}
PALETTE = list(OKABE_ITO.values())
#: A marker per series, in the palette's order, so that series differ by shape as well as colour.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
GREY = "0.4"
#: ``gid`` of lines whose colour a colour bar explains (not a legend).
BY_COLORBAR = "explained-by-colorbar"
#: A sequential map for ordered series (checkpoints): viridis without its palest yellow.
SEQUENTIAL = LinearSegmentedColormap.from_list("viridis_page", plt.get_cmap("viridis")(np.linspace(0, 0.88, 256)))

_RC = {"font.size": FONT_PT, "axes.titlesize": FONT_PT + 1, "axes.labelsize": FONT_PT,
       "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
       "legend.title_fontsize": FONT_PT, "figure.titlesize": FONT_PT + 1.5, "figure.labelsize": FONT_PT,
       "figure.dpi": DPI, "savefig.dpi": DPI, "lines.linewidth": 1.5, "lines.markersize": 4,
       "legend.frameon": False, "axes.titlepad": 4}


def style() -> None:
    """The book's figure style: seaborn's white grid, :data:`PALETTE`, :data:`FONT_PT` text, :data:`DPI`."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, rc=_RC)


def page_figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None, panel_height: float | None = None,
                **subplots_kw):
    """A figure of ``nrows × ncols`` panels sized for the page (constrained layout, so that a
    ``fig.legend(loc="outside lower center")`` gets room): ``width`` defaults to 6 in for one
    column and :data:`PAGE_WIDTH` otherwise, and is capped at it. Returns ``(fig, axes)``, axes
    a 2-D array unless ``squeeze=True`` is passed."""
    style()
    if width is None:
        width = {1: 6.0, 2: 8.0}.get(ncols, PAGE_WIDTH)
    if panel_height is None:
        panel_height = {1: 3.6, 2: 3.0}.get(ncols, 2.6)
    subplots_kw.setdefault("squeeze", False)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(width, PAGE_WIDTH), panel_height * nrows + 0.6),
                             layout="constrained", **subplots_kw)
    fig.page_grid = (nrows, ncols)
    _register_reflow()
    return fig, axes


# ---- figures that reflow on a phone -----------------------------------------------------------

def panels(fig) -> list:
    """The visible panels of a :func:`page_figure` grid, in the order its one-column rendition
    stacks them (row by row, or column by column where the figure sets ``page_order``)."""
    if not hasattr(fig, "page_grid"):
        return []
    grid = [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.get_visible()]
    if getattr(fig, "page_order", "rows") == "columns":
        key = lambda ax: (ax.get_subplotspec().colspan.start, ax.get_subplotspec().rowspan.start)  # noqa: E731
        grid.sort(key=key)
    return grid


def one_column(fig, width: float = PHONE_WIDTH):
    """A copy of ``fig`` with its panels stacked in one column, ``width`` inches wide, each with
    its tick labels, axis labels and title (``ax.narrow_title`` where set), and its legend in
    one column: the rendition a phone shows."""
    narrow = copy.deepcopy(fig)
    order = panels(narrow)
    labels = {ax: next((o.get_ylabel() for o in ax.get_shared_y_axes().get_siblings(ax) if o.get_ylabel()), "")
              for ax in order}  # the y label a shared-axis row gave only its first panel
    for ax in [a for a in narrow.axes if a.get_subplotspec() is not None and a not in order]:
        narrow.delaxes(ax)
    nrows, ncols = getattr(fig, "page_grid", (len(order), 1))
    height = (fig.get_figheight() - 0.6) / nrows
    gs = narrow.add_gridspec(len(order), 1)
    for i, ax in enumerate(order):
        ax.set_subplotspec(gs[i, 0])
        xt, yt = len(ax.get_xticks()), len(ax.get_yticks())
        if ax.axison and (xt or yt):
            ax.tick_params(labelleft=bool(yt), labelbottom=bool(xt))
        if not ax.get_ylabel() and labels.get(ax):
            ax.set_ylabel(labels[ax])
        if getattr(ax, "narrow_title", None):
            ax.set_title(ax.narrow_title)
    legend_rows = 0
    if getattr(narrow, "page_legend", None):
        handles, kw = narrow.page_legend
        narrow.legends.clear()  # (a deep copy's legends remove themselves from the original's list)
        cols = _narrow_ncols(handles)
        _page_legend(narrow, handles, ncols=cols, **kw)
        legend_rows = math.ceil(len(handles) / cols)
    scale = min(1.0, width / fig.get_figwidth() * ncols)
    narrow.set_size_inches(width, max(1.6, height * scale) * len(order) + 0.6 + 0.2 * legend_rows)
    return narrow


def _png(fig) -> str:
    from IPython.core.pylabtools import print_figure

    return base64.b64encode(print_figure(fig, "png", bbox_inches="tight")).decode()


def reflow_html(fig) -> str | None:
    """For a figure of more than :data:`REFLOW_PANELS` panels, a ``<picture>`` that shows the
    figure on wide screens and its :func:`one_column` rendition on narrow ones (the book's HTML
    prefers it to the PNG; the alt text is the figure's caption, set when the book is built);
    None for other figures, which are shown as their PNG."""
    if not isinstance(fig, Figure) or len(panels(fig)) <= REFLOW_PANELS:
        return None
    narrow = one_column(fig)
    try:
        small = _png(narrow)
    finally:
        plt.close(narrow)
    cols = getattr(fig, "page_grid", (1, 1))[1]
    return (f'<picture class="reflow"><source media="{html.escape(NARROW_MEDIA)}" '
            f'srcset="data:image/png;base64,{small}" data-columns="1">'
            f'<img src="data:image/png;base64,{_png(fig)}" alt="" data-columns="{cols}"></picture>')


def _register_reflow() -> None:
    """Let IPython show figures through :func:`reflow_html` (in a kernel; a no-op elsewhere)."""
    try:
        from IPython import get_ipython
    except ImportError:  # plotting without IPython installed
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(Figure, reflow_html)


# ---- reading a figure as the page shows it ----------------------------------------------------

def _effective_pt(t: Text) -> float:
    """Font size of the smallest glyphs of a text: mathtext super/subscripts are drawn at 70%."""
    s = t.get_text()
    small = "$" in s and re.search(r"\$[^$]*[\^_][^$]*\$", s)
    return t.get_fontsize() * (0.7 if small else 1.0)


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and not (t.axes is not None and not t.axes.get_visible())]


def readability(fig, column_px: float = COLUMN_PX) -> dict:
    """How the page shows ``fig``: its drawn width and height in inches (the tight bounding box
    the inline backend saves), dpi, smallest font size (points), and that text's height in CSS
    px once the image is shown in a column ``column_px`` wide (shrunk to fit, never enlarged:
    ``min(dpi, column_px / width)`` px per inch), with the text itself and the number of legends."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    texts = _texts(fig)
    smallest = min(texts, key=_effective_pt) if texts else None
    min_pt = _effective_pt(smallest) if smallest is not None else float("inf")
    px_per_in = min(fig.dpi, column_px / box.width)
    return {"width_in": round(float(box.width), 2), "height_in": round(float(box.height), 2), "dpi": fig.dpi,
            "min_pt": min_pt, "min_px": round(min_pt / 72 * px_per_in, 2),
            "smallest_text": smallest.get_text() if smallest is not None else None,
            "legends": len(fig.findobj(Legend))}


def axis_problems(fig) -> list[str]:
    """Tick labels that overlap their neighbours, and numeric axes that label fewer than 3 ticks."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for ax in fig.findobj(mpl.axes.Axes):
        if not ax.get_visible() or not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            labels = [(tick.get_loc(), tick.label1) for tick in axis.get_major_ticks()
                      if tick.label1.get_visible() and tick.label1.get_text().strip() and lo <= tick.get_loc() <= hi]
            labels += [(tick.get_loc(), tick.label2) for tick in axis.get_major_ticks()
                       if tick.label2.get_visible() and tick.label2.get_text().strip() and lo <= tick.get_loc() <= hi]
            if not labels:
                continue
            name = f"{ax.get_title() or ax.get_label()!r} {axis.axis_name}"
            if not isinstance(axis.get_major_formatter(), mticker.FixedFormatter) and len(labels) < 3:
                problems.append(f"{name}: only {len(labels)} labelled tick(s) {[t.get_text() for _, t in labels]}")
            boxes = [(loc, t.get_window_extent(renderer)) for loc, t in sorted(labels, key=lambda p: p[0])]
            for (_, a), (_, b) in zip(boxes, boxes[1:]):
                if a.overlaps(b):
                    problems.append(f"{name}: tick labels overlap")
                    break
    return problems


# ---- shared pieces --------------------------------------------------------------------------

def _number(v: float) -> str:
    """A tick label without mathtext: 0.001 … 10,000 as decimals, beyond that 1e−5 / 2e6."""
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e5:
        return f"{v:,.0f}" if a >= 1 and float(v).is_integer() else f"{v:g}"
    m, e = f"{v:.0e}".split("e")
    return f"{m}e{int(e)}".replace("-", "−")


def _log_axis(axis, values, scale: str = "log", linthresh: float = 10.0) -> None:
    """A log (or symlog, step 0 included) ``axis`` with plain-number labels: every decade when the
    data span two or more (always for symlog), else 1-2-5 within each decade; no minor labels."""
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0], float)
    span = math.log10(v.max() / v.min()) if v.size else 3.0
    subs = (1.0,) if span >= 2 or scale == "symlog" else (1.0, 2.0, 5.0)
    ax = axis.axes
    if scale == "symlog":
        (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("symlog", linthresh=linthresh)
        axis.set_major_locator(mticker.SymmetricalLogLocator(base=10, linthresh=linthresh, subs=subs))
    else:
        (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
        axis.set_major_locator(mticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(mticker.FuncFormatter(lambda x, _: _number(x)))
    axis.set_minor_formatter(mticker.NullFormatter())


def _series(labels) -> dict:
    """label → (colour, marker), in :data:`PALETTE` / :data:`MARKERS` order."""
    return {label: (PALETTE[k % len(PALETTE)], MARKERS[k % len(MARKERS)]) for k, label in enumerate(labels)}


def _handle(label, color=GREY, marker="", ls="-", **kw) -> Line2D:
    return Line2D([], [], color=color, marker=marker, ls=ls, label=label, **kw)


def _band(label, color=GREY) -> Patch:
    return Patch(facecolor=color, alpha=0.25, edgecolor="none", label=label)


def _page_legend(fig, handles, ncols: int | None = None, **kw):
    """The figure's one legend, below its panels, its entries read row by row."""
    ncols = ncols or min(len(handles), 4)
    rows = math.ceil(len(handles) / ncols)
    order = [handles[r * ncols + c] for c in range(ncols) for r in range(rows) if r * ncols + c < len(handles)]
    fig.page_legend = (handles, kw)  # what a one-column rendition redraws
    return fig.legend(handles=order, loc="outside lower center", ncols=ncols, **kw)


def _narrow_ncols(handles) -> int:
    """Legend columns that fit a phone's column: five of short labels, two of middling, else one."""
    longest = max((len(h.get_label()) for h in handles), default=0)
    return 5 if longest <= 4 else 2 if longest <= 16 else 1


def _unused_off(axes, n: int) -> None:
    for ax in list(np.ravel(axes))[n:]:
        ax.set_visible(False)


# ---- the figures ----------------------------------------------------------------------------

def _curve_handles(series: dict) -> list:
    return [_handle(label, c, m) for label, (c, m) in series.items()] + [
        _handle("held-out tasks (solid; band: 95% CI)"), _handle("training query sets (dotted)", ls=":")]


def learning_curves(runs: dict[str, Run], *, title: str = "", ax=None, log_x: bool = True,
                    series: dict | None = None, legend: bool = True):
    """Held-out accuracy at each checkpoint (solid, ±95% CI band) and the training query
    accuracy (dotted) of each run, against meta-steps. ``runs``: label → run; ``series``:
    label → (colour, marker), default :data:`PALETTE` order; ``legend=False`` leaves the
    legend to the caller (:func:`learning_curve_panels` draws one for all panels)."""
    style()
    fig = None
    if ax is None:
        fig, axes = page_figure(1)
        ax = axes[0, 0]
    series = series or _series(runs)
    all_steps = []
    for label, run in runs.items():
        color, marker = series[label]
        recs = run.metrics()
        test = [r for r in recs if "test_score" in r and r["step"] > 0]
        train = [r for r in recs if "train_score" in r and r["step"] > 0]
        steps = [r["step"] for r in test]
        all_steps += steps
        mean = np.array([100 * r["test_score"] for r in test])
        ci = np.array([100 * r["test_ci95"] for r in test])
        ax.plot(steps, mean, "-", color=color, marker=marker, ms=3, label=label)
        ax.fill_between(steps, mean - ci, mean + ci, color=color, alpha=0.2, lw=0)
        ax.plot([r["step"] for r in train], [100 * r["train_score"] for r in train], ":", color=color, lw=1.2,
                alpha=0.9)
    if log_x and all_steps:
        _log_axis(ax.xaxis, all_steps)
    ax.set(xlabel="meta-training step", ylabel="query accuracy after adaptation (%)", title=title)
    if legend:
        if fig is not None:
            _page_legend(fig, _curve_handles(series), ncols=2)
        else:
            ax.legend(handles=_curve_handles(series), loc="lower right")
    return ax


def learning_curve_panels(panels: dict[str, dict[str, Run]]):
    """One panel of :func:`learning_curves` per entry ``title → {label: run}``, three to a row,
    sharing the accuracy axis and one legend (a run label keeps its colour across panels)."""
    labels = list(dict.fromkeys(label for runs in panels.values() for label in runs))
    series = _series(labels)
    cols = min(3, len(panels))
    fig, axes = page_figure(cols, math.ceil(len(panels) / cols), sharey=True)
    for ax, (title, runs) in zip(axes.flat, panels.items()):
        learning_curves(runs, title=title, ax=ax, series=series, legend=False)
    for ax in axes[:, 1:].flat:
        ax.set_ylabel("")
    _unused_off(axes, len(panels))
    _page_legend(fig, _curve_handles(series), ncols=max(2, min(len(series), 4)))  # runs, then line styles
    return fig


def finetune_change(fc, metric: str = "correlation"):
    """[G] Fig 1a (:class:`~mamlscope.measure.representations.FinetuneChange`): (a) dissimilarity per
    layer after fine-tuning at each checkpoint (colour: the checkpoint, on the colour bar);
    (b) the depth ordering ρ over training (both RDM metrics); (c) each layer of θ_t against
    θ_0 (no inner loop)."""

    fig, axes = page_figure(3, width=PAGE_WIDTH, panel_height=2.9)
    axes = axes[0]
    n = len(fc.layers)
    norm = LogNorm(vmin=min(fc.steps) + 1, vmax=max(fc.steps) + 1)
    for k, s in enumerate(fc.steps):
        mean, ci = mean_ci(fc.d[metric][k])
        line, caps, bars = axes[0].errorbar(range(n), mean, yerr=ci, color=SEQUENTIAL(norm(s + 1)), marker="o",
                                            ms=2.5, lw=1, elinewidth=0.8, capsize=0)
        line.set_gid(BY_COLORBAR)
    cbar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=SEQUENTIAL), ax=axes[0], pad=0.02, aspect=30)
    cbar.set_label("checkpoint (step + 1)")
    cbar.ax.yaxis.set_major_locator(mticker.LogLocator(base=10))
    cbar.ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda x, _: _number(x)))
    cbar.ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    axes[0].set(xticks=range(n), xticklabels=fc.layers, ylabel=f"dissimilarity, adapted vs θ_c\n({metric} RDMs)",
                title="(a) after the fine-tuning\ninner loop (mean ± 95% CI)")
    handles = []
    for m, ls, marker in zip(fc.d, ("-", "--", "-."), ("o", "s", "^")):
        trend = fc.trend(m)
        x = trend.index.to_numpy() + 1
        axes[1].errorbar(x, trend.rho, yerr=[trend.rho - trend.lo, trend.hi - trend.rho], color="black",
                         marker=marker, ms=3, lw=1.2, elinewidth=0.8, capsize=2, ls=ls)
        handles.append(_handle(f"(b) ρ from {m} RDMs", "black", marker, ls))
    _log_axis(axes[1].xaxis, np.asarray(fc.steps) + 1)
    axes[1].set(xlabel="meta-training step + 1", ylabel="ρ(layer index, dissimilarity)",
                title="(b) depth ordering\n(mean ± 95% CI over tasks)", ylim=(-1.05, 1.05))
    series = _series(fc.layers)
    for j, layer in enumerate(fc.layers):
        color, marker = series[layer]
        axes[2].plot(np.asarray(fc.steps) + 1, fc.drift[metric][:, j], color=color, marker=marker, ms=3)
    _log_axis(axes[2].xaxis, np.asarray(fc.steps) + 1)
    axes[2].set(xlabel="meta-training step + 1", ylabel=f"d(θ_t, θ_0) ({metric} RDMs)",
                title="(c) θ_t against θ_0\n(no inner loop)")
    _page_legend(fig, [_handle(f"(c) {layer}", c, m) for layer, (c, m) in series.items()] + handles,
                 ncols=min(len(series) + len(handles), 4))
    return fig


def supervised_change(sc, metric: str = "correlation", kernel: str = "rbf"):
    """[G] Fig 2 (:class:`~mamlscope.measure.representations.SupervisedChange`): RSA dissimilarity and
    CKA to the random init over supervised training, per layer (mean ± 95% CI over seeds)."""

    fig, axes = page_figure(2, sharex=True)
    axes = axes[0]
    series = _series(sc.layers)
    for j, layer in enumerate(sc.layers):
        color, marker = series[layer]
        for ax, curves in zip(axes, (sc.rsa[metric], sc.cka[kernel])):
            mean, ci = mean_ci(curves[:, :, j])
            ax.plot(sc.steps, mean, color=color, marker=marker, ms=3)
            ax.fill_between(sc.steps, mean - ci, mean + ci, color=color, alpha=0.2, lw=0)
    axes[0].set(ylabel="RSA dissimilarity to the random init", title=f"RSA ({metric} RDMs)")
    axes[1].set(ylabel=f"{kernel} CKA with the random init", title=f"CKA ({kernel} kernel)")
    for ax in axes:
        ax.set(xlabel="supervised training step")
    _page_legend(fig, [_handle(layer, c, m) for layer, (c, m) in series.items()]
                 + [_band("95% CI over seeds")], ncols=min(len(series) + 1, 6))
    return fig


def meta_change(mc, metric: str = "correlation"):
    """[G] Fig 1b (:class:`~mamlscope.measure.representations.MetaChange`): change of θ's representation
    per checkpoint interval, per layer (log y axis); the dotted line is [G]'s ≈ 0.1 for the last
    conv layer."""
    fig, axes = page_figure(1, width=6.5, panel_height=3.4)
    ax = axes[0, 0]
    series = _series(mc.layers)
    d = np.asarray(mc.d[metric], float)
    for j, layer in enumerate(mc.layers):
        color, marker = series[layer]
        ax.plot(mc.grid[1:], d[:, j], color=color, marker=marker, ms=3.5)
    ax.axhline(0.1, color=GREY, ls=":", lw=1.2)
    positive = d[np.isfinite(d) & (d > 0)]
    if positive.size and (d[np.isfinite(d)] > 0).all():
        _log_axis(ax.yaxis, np.append(positive, 0.1))
    else:  # a layer that did not change at all: linear near 0
        _log_axis(ax.yaxis, np.append(positive, 0.1), scale="symlog",
                  linthresh=float(positive.min()) if positive.size else 1e-3)
        ax.set_ylim(bottom=0)
    ax.set(xlabel="meta-training step t", ylabel=f"d(θ_t, θ_(t−{mc.delta})) ({metric} RDMs)",
           title="Change of θ's representation per checkpoint interval")
    fig.legend(handles=[_handle(layer, c, m) for layer, (c, m) in series.items()]
               + [_handle("[G]'s ≈ 0.1 for\nthe last conv layer", GREY, ls=":")], loc="outside right upper")
    return fig


def inner_vs_meta_mds(ivm, metric: str = "correlation"):
    """[G] Fig 3 (:class:`~mamlscope.measure.representations.InnerVsMeta`): per layer, a metric-MDS map
    of the RDM of RDMs. Colour: checkpoint; marker: number of inner steps; dotted: one task's
    inner loop from its checkpoint."""

    n_panels = len(ivm.layers) + 1
    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, grid_axes = page_figure(cols, rows, width=PAGE_WIDTH, panel_height=2.55)
    axes, legend_ax = list(grid_axes.flat[: len(ivm.layers)]), grid_axes.flat[len(ivm.layers)]
    _unused_off(grid_axes, n_panels)
    legend_ax.set_visible(True)
    markers = dict(zip(ivm.inner_steps, "o^sDvP"))
    colour = lambda c: SEQUENTIAL(c / max(1, len(ivm.checkpoints) - 1))  # noqa: E731
    index = {lab: k for k, lab in enumerate(ivm.labels)}
    later = [s for s in ivm.inner_steps if s]
    for ax, layer in zip(axes, ivm.layers):
        xy = mds_embedding(ivm.rdm2[metric][layer], seed=0).cpu().numpy()
        for c in range(len(ivm.checkpoints)):
            for i in range(ivm.n_tasks):
                path = [index[(c, None, 0)]] + [index[(c, i, s)] for s in later]
                ax.plot(xy[path, 0], xy[path, 1], ":", color=colour(c), lw=0.9)
            for (cc, i, s), k in index.items():
                if cc == c:
                    ax.scatter(*xy[k], color=colour(c), marker=markers[s], s=36 if s == 0 else 16,
                               edgecolor="black" if s == 0 else "none", linewidths=0.8, zorder=3)
        ax.set(title=layer, xticks=[], yticks=[])
    handles = [_handle("θ_c (0 inner steps)" if s == 0 else f"{s} inner step{'s' * (s != 1)}", GREY, m, "",
                       markeredgecolor="black" if s == 0 else GREY, ms=6 if s == 0 else 5)
               for s, m in markers.items()]
    handles += [_handle(f"checkpoint: step {s:,}", colour(c), ls="-") for c, s in enumerate(ivm.checkpoints)]
    handles += [_handle("one task's inner loop", GREY, ls=":")]
    legend_ax.axis("off")
    legend_ax.legend(handles=handles, loc="center", frameon=False, title="marker: inner steps\ncolour: checkpoint")
    fig.suptitle(f"MDS of the RDM of RDMs ({metric} RDMs), per layer")
    return fig


def before_after(ba):
    """[R] Fig 2 (:class:`~mamlscope.measure.reuse.BeforeAfter`): per layer, the similarity of the
    representations before and after the inner loop (SVCCA, PWCCA, linear CKA; 95% CI over
    tasks), the null floor (vs an unrelated network) and R4's 0.9 threshold."""
    s = ba.summary()
    fig, axes = page_figure(1, width=6.0, panel_height=3.3)
    ax = axes[0, 0]
    x = np.arange(len(ba.layers))
    measures = [("svcca", "SVCCA"), ("pwcca", "PWCCA"), ("cka", "linear CKA")]
    handles = []
    for k, (m, label) in enumerate(measures):
        mean = s[m].to_numpy(float)
        err = np.vstack([mean - s[f"{m} lo"].to_numpy(float), s[f"{m} hi"].to_numpy(float) - mean])
        ax.bar(x + (k - 1) * 0.27, mean, 0.27, yerr=err, capsize=2, color=PALETTE[k], label=label,
               error_kw={"elinewidth": 0.9})
        handles.append(Patch(facecolor=PALETTE[k], label=label))
    handles.append(_handle("error bar: 95% CI over tasks", "black", "|", "", ms=9, mew=1.2))
    if (ba.frame.pair == "unrelated").any():  # the null floor: the adapted network vs a random-init one
        floor = ba.summary("unrelated")
        for k, (m, _) in enumerate(measures):
            ax.plot(x + (k - 1) * 0.27, floor[m].to_numpy(float), "x", color="black", ms=6, mew=1.5)
        handles.append(_handle("vs an unrelated network (null floor)", "black", "x", "", mew=1.5))
    ax.axhline(0.9, color=GREY, ls="--", lw=1.2)
    handles.append(_handle("0.9: R4's threshold for the body", GREY, ls="--"))
    ax.set(xticks=x, xticklabels=ba.layers, ylim=(0, 1.05), ylabel="similarity before vs after adaptation",
           title=f"{s.shape[0]} layers, {ba.frame.task.nunique()} held-out tasks")
    _page_legend(fig, handles, ncols=3)
    return fig


def reuse_over_training(frame):
    """Beyond [R]: over meta-training (log axis), left the accuracy with full and with head-only
    adaptation; right the body's and the head's similarity before vs after full adaptation."""
    f = frame[frame.index > 0]
    fig, axes = page_figure(2)
    axes = axes[0]
    steps = f.index.to_numpy()
    series = _series(["full", "head only", "body CKA", "body SVCCA", "head SVCCA"])
    names = {"full": "accuracy, all layers adapted", "head only": "accuracy, the head only adapted"}
    handles = []
    for ax, cols in ((axes[0], ("full", "head only")), (axes[1], ("body CKA", "body SVCCA", "head SVCCA"))):
        for col in cols:
            color, marker = series[col]
            ls = ":" if col == "head SVCCA" else "-"
            scale = 100 if ax is axes[0] else 1
            ax.plot(steps, scale * f[col], color=color, marker=marker, ls=ls)
            handles.append(_handle(names.get(col, col), color, marker, ls))
        _log_axis(ax.xaxis, steps)
    axes[0].set(xlabel="meta-training step", ylabel="query accuracy (%)", title="full vs head-only adaptation")
    axes[1].set(ylim=(0, 1.05), xlabel="meta-training step", ylabel="similarity before vs after adaptation",
                title="how much the inner loop\nchanges representations")
    _page_legend(fig, handles, ncols=3)
    return fig


LANDSCAPE_PANELS = {"score": "target accuracy (%)", "curvature": "E‖H‖σ at θ̃ᵢ", "support_loss": "support loss at θ̃ᵢ",
                    "trajectory_coherence": "E[θ⃗ᵢᵀθ⃗ⱼ]", "gradient_coherence": "E[gᵢᵀgⱼ] at θ",
                    "representation_coherence": "E[hᵢᵀhⱼ] at θ"}


def landscape_curves(frames: dict, peaks: dict | None = None, *, panels: dict | None = None,
                     score_label: str = "target accuracy (%)"):
    """[L]'s signals over meta-training, one panel per signal (``panels``: column → title, default
    :data:`LANDSCAPE_PANELS`, three to a row), one line per run (``frames``: label →
    :func:`mamlscope.measure.landscape.run_signals`), ±1 SE bands, the step axis symmetric-log (step 0
    included); a dashed line, in the run's colour, at each run's accuracy peak (``peaks``: label →
    :class:`mamlscope.measure.landscape.Peak`)."""
    panels = LANDSCAPE_PANELS if panels is None else panels
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = page_figure(cols, rows, width=PAGE_WIDTH if cols > 2 else 8.0,
                            panel_height=2.45 if cols > 2 else 3.0)
    series = _series(frames)
    for ax, (key, label) in zip(axes.flat, panels.items()):
        for name, f in frames.items():
            color, marker = series[name]
            scale = 100 if key == "score" and f[key].max() <= 1 and f[key].min() >= 0 else 1
            steps, y, se = f.index.to_numpy(), scale * f[key].to_numpy(float), scale * f[f"{key}_se"].to_numpy(float)
            ax.plot(steps, y, "-", marker=marker, ms=3, color=color)
            ax.fill_between(steps, y - se, y + se, color=color, alpha=0.2, lw=0)
            if peaks and name in peaks:
                ax.axvline(peaks[name].step, color=color, ls="--", lw=1)
        all_steps = np.concatenate([f.index.to_numpy(float) for f in frames.values()])
        _log_axis(ax.xaxis, all_steps[all_steps > 0], scale="symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set(xlabel="meta-training step", title=score_label if key == "score" else label)
    _unused_off(axes, len(panels))
    handles = [_handle(name, c, m) for name, (c, m) in series.items()] + [_band("±1 SE over tasks")]
    if peaks:
        handles.append(_handle("the run's accuracy peak (dashed, its colour)", GREY, ls="--"))
    _page_legend(fig, handles, ncols=min(len(handles), 4 if len(handles) != 6 else 3))
    return fig


def signal_vs_score(frame, signal: str, *, score_label: str = "−MSE on meta-test tasks", ax=None):
    """One run's ``signal`` against its target score over checkpoints, coloured by step, with
    ±1 SE bars."""
    if ax is None:
        _, axes = page_figure(1, width=5.5, panel_height=3.4)
        ax = axes[0, 0]
    else:
        style()
    pts = ax.scatter(frame[signal], frame["score"], c=np.log10(frame.index.to_numpy(float) + 1), cmap=SEQUENTIAL,
                     zorder=3)
    ax.errorbar(frame[signal], frame["score"], xerr=frame[f"{signal}_se"], yerr=frame["score_se"], fmt="none",
                ecolor=GREY, alpha=0.6, label="±1 SE over tasks")
    ax.figure.colorbar(pts, ax=ax, label="log₁₀(meta-training step + 1)")
    ax.set(xlabel=LANDSCAPE_PANELS.get(signal, signal), ylabel=score_label)
    ax.legend(loc="best")
    return ax


def coherence_over_training(frames: dict):
    """Target accuracy (left) and E[θ⃗ᵢᵀθ⃗ⱼ] on held-out tasks (right, ±1 SE) over meta-training,
    one line per run (``frames``: label → :func:`mamlscope.measure.landscape.run_signals`)."""
    return landscape_curves(frames, panels={"score": "target accuracy (%)",
                                            "trajectory_coherence": "E[θ⃗ᵢᵀθ⃗ⱼ]\n(coherence of adaptation directions)"})


def filter_grid(images: dict, n: int = 16, cols: int | None = None):
    """The first ``n`` first-layer weight images of each network, side by side, ``cols`` to a
    row (default: a square grid) (``images``: label → ``(units, h, w)``); each image scaled to
    its own symmetric range (red positive, blue negative, white 0)."""
    style()
    nets = list(images)
    n = min(n, *(len(v) for v in images.values()))
    cols = min(cols or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / cols)
    cell = min(0.8, (PAGE_WIDTH - 0.3 * len(nets)) / (cols * len(nets)))
    fig = plt.figure(figsize=(len(nets) * (cols * cell + 0.3), rows * cell + 0.9), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(nets), wspace=0.05))
    for sub, name in zip(subfigs, nets):
        axes = np.atleast_2d(sub.subplots(rows, cols, squeeze=False))
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([]), ax.set_yticks([])
            if i >= n:
                ax.set_visible(False)
                continue
            w = images[name][i].numpy()
            lim = float(np.abs(w).max()) or 1.0
            ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
        sub.suptitle(name, fontsize=FONT_PT + 1)
    fig.supxlabel("red positive, blue negative, white 0; each image on its own scale", fontsize=FONT_PT)
    return fig


#: Ten colours for up to ten classes (seaborn's colour-blind palette), repeated with a second
#: marker for 11–20 classes.
CLASS_COLOURS = sns.color_palette("colorblind", 10)


def embeddings(panels: dict, labels, methods=("tsne", "pca")):
    """2-D embeddings coloured (and marked) by class: one column per network (``panels``: label
    → the dict of :func:`mamlscope.measure.features.cluster_quality`), one row per method."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    names = {"tsne": "t-SNE", "pca": "PCA"}
    cols = len(panels)
    side = min(2.3, (PAGE_WIDTH - 0.4) / cols)
    fig, axes = page_figure(cols, len(methods), width=cols * side + 0.4, panel_height=side,
                            gridspec_kw={"wspace": 0.02, "hspace": 0.02})
    fig.page_order = "columns"  # on a phone: each network's embeddings together
    class_style = {k: (CLASS_COLOURS[int(j) % 10], "o^sDv"[int(j) // 10 % 5]) for j, k in enumerate(classes)}
    for c, (name, q) in enumerate(panels.items()):
        for r, m in enumerate(methods):
            ax = axes[r, c]
            xy = np.asarray(q[m])
            for k, (color, marker) in class_style.items():
                sel = labels == k
                ax.scatter(xy[sel, 0], xy[sel, 1], color=color, marker=marker, s=7, linewidths=0)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name.replace(" (", "\n("))
            ax.narrow_title = f"{name}: {names.get(m, m)}"
            if c == 0:
                ax.set_ylabel(names.get(m, m))
    if len(classes) <= 10:
        handles = [_handle(str(k), color, marker, "", ms=6) for k, (color, marker) in class_style.items()]
        _page_legend(fig, handles, ncols=len(handles), title="class", handletextpad=0.1, columnspacing=0.8)
    return fig


def unit_extremes(pool, extremes: dict):
    """For each network (``extremes``: label → {unit: (most, least)} indices into ``pool``), one
    row per unit: its least activating inputs (left) and most activating (right)."""
    style()
    rows = [(name, u, most, least) for name, d in extremes.items() for u, (most, least) in d.items()]
    n = len(rows[0][2])
    cell, label_w = min(0.55, (PAGE_WIDTH - 1.6) / (2 * n + 1)), 1.5
    width, height = label_w + cell * (2 * n + 1), cell * len(rows) + 0.35
    fig = plt.figure(figsize=(width, height))
    gs = fig.add_gridspec(len(rows), 2 * n + 2, width_ratios=[label_w / cell] + [1] * (2 * n + 1),
                          left=0.005, right=0.995, bottom=0.005, top=1 - 0.33 / height, wspace=0.06, hspace=0.06)
    for r, (name, u, most, least) in enumerate(rows):
        label_ax = fig.add_subplot(gs[r, 0])
        label_ax.axis("off")
        label_ax.text(0.97, 0.5, f"{name}\nunit {u}", transform=label_ax.transAxes, ha="right", va="center",
                      fontsize=FONT_PT)
        for i, idx in enumerate(list(least) + [None] + list(most)):
            ax = fig.add_subplot(gs[r, i + 1])
            ax.axis("off")
            if idx is not None:
                ax.imshow(pool[int(idx)].numpy(), cmap="gray_r")
            if r == 0 and i in (0, n + 1):
                ax.set_title("least activating" if i == 0 else "most activating", loc="left", fontsize=FONT_PT + 1)
    return fig


def eq2_errors(tables: dict):
    """Relative error of the central-difference Hessian-vector product (solid) and of the
    meta-gradient built from it (dotted) against ε, one colour per floating-point type
    (``tables``: label → frame of :func:`mamlscope.measure.features.eq2_check`)."""
    fig, axes = page_figure(1, width=6.5, panel_height=3.4)
    ax = axes[0, 0]
    handles, ys, eps_all = [], [], []
    for (name, t), color in zip(tables.items(), PALETTE):
        eps = t.index.to_numpy(float)
        ax.plot(eps, t["Hv relative error"], "o-", color=color)
        ax.plot(eps, t["meta-gradient relative error"], "s:", color=color)
        handles += [_handle(f"Hv, {name}", color, "o"), _handle(f"meta-gradient, {name}", color, "s", ":")]
        ys += [t["Hv relative error"].to_numpy(float), t["meta-gradient relative error"].to_numpy(float)]
        eps_all.append(eps)
    _log_axis(ax.xaxis, np.concatenate(eps_all))
    _log_axis(ax.yaxis, np.concatenate(ys))
    ax.set(xlabel="ε", ylabel="relative error against\nthe exact product")
    fig.legend(handles=handles, loc="outside right upper")
    return fig
