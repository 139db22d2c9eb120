"""Shared figure helpers (matplotlib + seaborn), one function per kind of figure."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .runs import Run


def style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def learning_curves(runs: dict[str, Run], *, title: str = "", ax=None, log_x: bool = True):
    """Held-out accuracy at each checkpoint (solid, ±95% CI band) and the training query
    accuracy (dotted) of each run, against meta-steps. ``runs``: label → run."""
    style()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for (label, run), color in zip(runs.items(), sns.color_palette()):
        recs = run.metrics()
        test = [r for r in recs if "test_score" in r and r["step"] > 0]
        train = [r for r in recs if "train_score" in r]
        steps = [r["step"] for r in test]
        mean = [100 * r["test_score"] for r in test]
        ci = [100 * r["test_ci95"] for r in test]
        ax.plot(steps, mean, color=color, label=f"{label} (held-out tasks)")
        ax.fill_between(steps, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)],
                        color=color, alpha=0.2)
        ax.plot([r["step"] for r in train], [100 * r["train_score"] for r in train], ":", color=color,
                alpha=0.8, label=f"{label} (training query sets)")
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel="meta-training step", ylabel="query accuracy after adaptation (%)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def learning_curve_panels(panels: dict[str, dict[str, Run]]):
    """One panel of :func:`learning_curves` per entry ``title → {label: run}``, side by side."""
    style()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels.items()):
        learning_curves(runs, title=title, ax=ax)
    fig.tight_layout()
    return fig


def finetune_change(fc, metric: str = "correlation"):
    """[G] Fig 1a (:class:`~mamlscope.representations.FinetuneChange`): left, dissimilarity per
    layer after fine-tuning at each checkpoint; middle, the depth ordering ρ over training (both
    RDM metrics); right, each layer of θ_t against θ_0 (no inner loop)."""
    from .stats import mean_ci

    style()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    cmap = plt.get_cmap("viridis")
    n = len(fc.layers)
    for k, s in enumerate(fc.steps):
        mean, ci = mean_ci(fc.d[metric][k])
        axes[0].errorbar(range(n), mean, yerr=ci, color=cmap(k / max(1, len(fc.steps) - 1)),
                         marker="o", ms=3, capsize=2, label=f"step {s}")
    axes[0].set(xticks=range(n), xticklabels=fc.layers, ylabel=f"dissimilarity, adapted vs θ_c ({metric})",
                title="After the fine-tuning inner loop")
    axes[0].legend(fontsize=6, ncol=2)
    for m in fc.d:
        trend = fc.trend(m)
        axes[1].errorbar(trend.index.to_numpy() + 1, trend.rho, yerr=[trend.rho - trend.lo, trend.hi - trend.rho],
                         marker="o", ms=3, capsize=3, label=f"{m} RDMs", ls="-" if m == metric else "--")
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(xscale="log", xlabel="meta-training step + 1", ylabel="ρ(layer index, dissimilarity)",
                title="Depth ordering (mean ± 95% CI over tasks)", ylim=(-1.05, 1.05))
    axes[1].legend(fontsize=8)
    for j, layer in enumerate(fc.layers):
        axes[2].plot(np.asarray(fc.steps) + 1, fc.drift[metric][:, j], marker="o", ms=2, label=layer)
    axes[2].set(xscale="log", xlabel="meta-training step + 1", ylabel=f"d(θ_t, θ_0) ({metric})",
                title="θ_t against θ_0 (no inner loop)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def supervised_change(sc, metric: str = "correlation", kernel: str = "rbf"):
    """[G] Fig 2 (:class:`~mamlscope.representations.SupervisedChange`): RSA dissimilarity and
    CKA to the random init over supervised training, per layer (mean ± 95% CI over seeds)."""
    from .stats import mean_ci

    style()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharex=True)
    for j, layer in enumerate(sc.layers):
        for ax, curves in zip(axes, (sc.rsa[metric], sc.cka[kernel])):
            mean, ci = mean_ci(curves[:, :, j])
            ax.plot(sc.steps, mean, marker="o", ms=2, label=layer)
            ax.fill_between(sc.steps, mean - ci, mean + ci, alpha=0.2)
    axes[0].set(ylabel="RSA dissimilarity to the random init", title=f"RSA ({metric} RDMs)")
    axes[1].set(ylabel=f"{kernel} CKA with the random init", title=f"CKA ({kernel} kernel)")
    for ax in axes:
        ax.set(xlabel="supervised training step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def meta_change(mc, metric: str = "correlation"):
    """[G] Fig 1b (:class:`~mamlscope.representations.MetaChange`): change of θ's representation
    per checkpoint interval, per layer; the dotted line is [G]'s ≈ 0.1 for the last conv layer."""
    style()
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, layer in enumerate(mc.layers):
        ax.plot(mc.grid[1:], mc.d[metric][:, j], marker="o", ms=3, label=layer)
    ax.axhline(0.1, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="symlog", xlabel="meta-training step t",
           ylabel=f"d(θ_t, θ_(t−{mc.delta})) ({metric})", title="Change of θ's representation per checkpoint interval")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def inner_vs_meta_mds(ivm, metric: str = "correlation"):
    """[G] Fig 3 (:class:`~mamlscope.representations.InnerVsMeta`): per layer, a metric-MDS map
    of the RDM of RDMs. Colour: checkpoint; marker: number of inner steps; dotted: one task's
    inner loop from its checkpoint."""
    from .metrics import mds_embedding

    style()
    fig, grid_axes = plt.subplots(2, 3, figsize=(12, 7.5))
    axes, legend_ax = grid_axes.flat[: len(ivm.layers)], grid_axes.flat[-1]
    markers = dict(zip(ivm.inner_steps, "o^sDvP"))
    cmap = plt.get_cmap("viridis")
    colour = lambda c: cmap(c / max(1, len(ivm.checkpoints) - 1))  # noqa: E731
    index = {lab: k for k, lab in enumerate(ivm.labels)}
    later = [s for s in ivm.inner_steps if s]
    for ax, layer in zip(axes, ivm.layers):
        xy = mds_embedding(ivm.rdm2[metric][layer], seed=0).cpu().numpy()
        for c in range(len(ivm.checkpoints)):
            for i in range(ivm.n_tasks):
                path = [index[(c, None, 0)]] + [index[(c, i, s)] for s in later]
                ax.plot(xy[path, 0], xy[path, 1], ":", color=colour(c), lw=0.8)
            for (cc, i, s), k in index.items():
                if cc == c:
                    ax.scatter(*xy[k], color=colour(c), marker=markers[s], s=28 if s == 0 else 14,
                               edgecolor="black" if s == 0 else "none", zorder=3)
        ax.set(title=layer, xticks=[], yticks=[])
    handles = [plt.Line2D([], [], marker=m, ls="", color="grey", label=f"{s} inner steps") for s, m in markers.items()]
    handles += [plt.Line2D([], [], color=colour(c), label=f"step {s}") for c, s in enumerate(ivm.checkpoints)]
    legend_ax.axis("off")
    legend_ax.legend(handles=handles, loc="center", fontsize=9, frameon=False,
                     title="marker: inner steps; colour: checkpoint")
    fig.suptitle(f"MDS of the RDM of RDMs ({metric} RDMs): checkpoints × tasks × inner steps, per layer")
    fig.tight_layout()
    return fig


def before_after(ba):
    """[R] Fig 2 (:class:`~mamlscope.reuse.BeforeAfter`): per layer, the similarity of the
    representations before and after the inner loop (SVCCA, PWCCA, linear CKA; 95% CI over tasks)."""
    style()
    s = ba.summary()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(len(ba.layers))
    for k, (m, label) in enumerate([("svcca", "SVCCA"), ("pwcca", "PWCCA"), ("cka", "linear CKA")]):
        mean = s[m].to_numpy(float)
        err = np.vstack([mean - s[f"{m} lo"].to_numpy(float), s[f"{m} hi"].to_numpy(float) - mean])
        ax.bar(x + (k - 1) * 0.27, mean, 0.27, yerr=err, capsize=3, label=label)
    if (ba.frame.pair == "unrelated").any():  # the null floor: the adapted network vs a random-init one
        floor = ba.summary("unrelated")
        for k, m in enumerate(("svcca", "pwcca", "cka")):
            ax.plot(x + (k - 1) * 0.27, floor[m].to_numpy(float), "kx", ms=6,
                    label="vs an unrelated network (null)" if k == 0 else None)
    ax.axhline(0.9, color="grey", ls="--", lw=1)
    ax.set(xticks=x, xticklabels=ba.layers, ylim=(0, 1.05), ylabel="similarity before vs after adaptation",
           title=f"{s.shape[0]} layers, {ba.frame.task.nunique()} held-out tasks")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def reuse_over_training(frame):
    """Beyond [R]: over meta-training (log axis), left the accuracy with full and with head-only
    adaptation; right the body's and the head's similarity before vs after full adaptation."""
    style()
    f = frame[frame.index > 0]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    steps = f.index.to_numpy()
    axes[0].plot(steps, 100 * f["full"], "o-", label="adapt all layers")
    axes[0].plot(steps, 100 * f["head only"], "s-", label="adapt the head only")
    axes[0].set(xscale="log", xlabel="meta-training step", ylabel="query accuracy (%)",
                title="full vs head-only adaptation")
    axes[0].legend(fontsize=8)
    for col, style_ in (("body CKA", "o-"), ("body SVCCA", "s-"), ("head SVCCA", "^:")):
        axes[1].plot(steps, f[col], style_, label=col)
    axes[1].set(xscale="log", ylim=(0, 1.05), xlabel="meta-training step", ylabel="before vs after adaptation",
                title="how much the inner loop changes representations")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


LANDSCAPE_PANELS = {"score": "target accuracy (%)", "curvature": "E‖H‖σ at θ̃ᵢ", "support_loss": "support loss at θ̃ᵢ",
                    "trajectory_coherence": "E[θ⃗ᵢᵀθ⃗ⱼ]", "gradient_coherence": "E[gᵢᵀgⱼ] at θ",
                    "representation_coherence": "E[hᵢᵀhⱼ] at θ"}


def landscape_curves(frames: dict, peaks: dict | None = None, *, panels: dict | None = None,
                     score_label: str = "target accuracy (%)"):
    """[L]'s signals over meta-training, one panel per signal (``panels``: column → title, default
    :data:`LANDSCAPE_PANELS`, three to a row), one line per run (``frames``: label →
    :func:`mamlscope.landscape.run_signals`), ±1 SE bands, the step axis symmetric-log (step 0
    included); a dashed line at each run's accuracy peak (``peaks``: label →
    :class:`mamlscope.landscape.Peak`)."""
    style()
    panels = LANDSCAPE_PANELS if panels is None else panels
    rows = math.ceil(len(panels) / 3)
    cols = min(3, len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols if rows > 1 else 6 * cols, 3.75 * rows + 0.25 * (rows == 1)),
                             squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels.items()):
        for (name, f), color in zip(frames.items(), sns.color_palette()):
            scale = 100 if key == "score" and f[key].max() <= 1 and f[key].min() >= 0 else 1
            steps, y, se = f.index.to_numpy(), scale * f[key].to_numpy(float), scale * f[f"{key}_se"].to_numpy(float)
            ax.plot(steps, y, "o-", ms=3, color=color, label=name)
            ax.fill_between(steps, y - se, y + se, color=color, alpha=0.2)
            if peaks and name in peaks:
                ax.axvline(peaks[name].step, color=color, ls="--", lw=0.8)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set(xlabel="meta-training step", title=score_label if key == "score" else label)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def signal_vs_score(frame, signal: str, *, score_label: str = "−MSE on meta-test tasks", ax=None):
    """One run's ``signal`` against its target score over checkpoints, coloured by step."""
    style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    pts = ax.scatter(frame[signal], frame["score"], c=np.log10(frame.index.to_numpy(float) + 1), cmap="viridis")
    ax.errorbar(frame[signal], frame["score"], xerr=frame[f"{signal}_se"], yerr=frame["score_se"], fmt="none",
                ecolor="grey", alpha=0.5)
    ax.figure.colorbar(pts, ax=ax, label="log₁₀(step + 1)")
    ax.set(xlabel=LANDSCAPE_PANELS.get(signal, signal), ylabel=score_label)
    return ax


def coherence_over_training(frames: dict):
    """Target accuracy (left) and E[θ⃗ᵢᵀθ⃗ⱼ] on held-out tasks (right, ±1 SE) over meta-training,
    one line per run (``frames``: label → :func:`mamlscope.landscape.run_signals`)."""
    return landscape_curves(frames, panels={"score": "target accuracy (%)",
                                            "trajectory_coherence": "E[θ⃗ᵢᵀθ⃗ⱼ] (coherence of adaptation directions)"})


def filter_grid(images: dict, n: int = 16, cols: int = 8):
    """The first ``n`` first-layer weight images of each network, side by side (``images``:
    label → ``(units, h, w)``); each image scaled to its own symmetric range (grey is 0)."""
    style()
    nets = list(images)
    n = min(n, *(len(v) for v in images.values()))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols * len(nets), figsize=(1.1 * cols * len(nets), 1.25 * rows + 0.5),
                             squeeze=False)
    for j, name in enumerate(nets):
        for i in range(n):
            ax = axes[i // cols, j * cols + i % cols]
            w = images[name][i].numpy()
            lim = float(np.abs(w).max()) or 1.0
            ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([]), ax.set_yticks([])
        axes[0, j * cols].set_title(name, loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def embeddings(panels: dict, labels, methods=("tsne", "pca")):
    """2-D embeddings coloured by class: one row per network (``panels``: label → the dict of
    :func:`mamlscope.features.cluster_quality`), one column per method."""
    style()
    labels = np.asarray(labels)
    n_cls = int(labels.max()) + 1
    cmap = plt.get_cmap("tab10" if n_cls <= 10 else "tab20")
    fig, axes = plt.subplots(len(panels), len(methods), figsize=(5.2 * len(methods), 4.4 * len(panels)), squeeze=False)
    names = {"tsne": "t-SNE", "pca": "PCA"}
    for r, (name, q) in enumerate(panels.items()):
        for c, m in enumerate(methods):
            ax = axes[r, c]
            xy = q[m]
            ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5, s=6, linewidths=0)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{name} — {names[m]}", fontsize=10)
    if n_cls <= 10:
        handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(k), label=str(k)) for k in range(n_cls)]
        fig.legend(handles=handles, loc="center right", title="class", fontsize=8)
        fig.tight_layout(rect=(0, 0, 0.93, 1))
    else:
        fig.tight_layout()
    return fig


def unit_extremes(pool, extremes: dict):
    """For each network (``extremes``: label → {unit: (most, least)} indices into ``pool``), one
    row per unit: its least activating inputs (left) and most activating (right)."""
    style()
    rows = [(name, u, most, least) for name, d in extremes.items() for u, (most, least) in d.items()]
    n = len(rows[0][2])
    fig, axes = plt.subplots(len(rows), 2 * n + 1, figsize=(0.75 * (2 * n + 1), 0.8 * len(rows) + 0.4), squeeze=False)
    for r, (name, u, most, least) in enumerate(rows):
        for i, idx in enumerate(list(least) + [None] + list(most)):
            ax = axes[r, i]
            ax.axis("off")
            if idx is not None:
                ax.imshow(pool[int(idx)].numpy(), cmap="gray_r")
        axes[r, 0].text(-0.3, 0.5, f"{name}\nunit {u}", transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=7)
    axes[0, 0].set_title("least activating", loc="left", fontsize=8)
    axes[0, n + 1].set_title("most activating", loc="left", fontsize=8)
    fig.tight_layout()
    return fig


def eq2_errors(tables: dict):
    """Relative error of the central-difference Hessian-vector product (and of the meta-gradient
    built from it) against ε, one line per floating-point type (``tables``: label → frame of
    :func:`mamlscope.features.eq2_check`)."""
    style()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, t), color in zip(tables.items(), sns.color_palette()):
        eps = t.index.to_numpy(float)
        ax.loglog(eps, t["Hv relative error"], "o-", color=color, label=f"Hv, {name}")
        ax.loglog(eps, t["meta-gradient relative error"], "s:", color=color, label=f"meta-gradient, {name}")
    ax.set(xlabel="ε", ylabel="relative error against the exact product")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
