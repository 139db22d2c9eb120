"""What the features look like (Agarwal [A] §3.2), with numbers behind the pictures.

* :func:`first_layer_images` — the first layer's weights as images (a fully-connected unit's 784
  weights as 28×28; a convolution's 3×3 kernels);
* :func:`features` and :func:`embed` — a layer's activations on a fixed pool of held-out inputs,
  reduced to 2-D by PCA or t-SNE (scikit-learn, fixed seed);
* :func:`cluster_quality` — how well those features separate the classes: leave-one-out k-NN
  accuracy (per point, so two networks on the same points compare paired) in the full space and in
  each 2-D embedding, and the silhouette score;
* :func:`unit_extremes` — for chosen units, the inputs of the pool that activate them most and least;
* :func:`eq2_check` — Agarwal's Eq. 2, the Hessian-vector product of the one-step MAML
  meta-gradient by central differences, (∇L(θ + εv) − ∇L(θ − εv)) / 2ε, against the exact
  product (forward-over-reverse autodiff), over a range of ε.

BatchNorm uses batch statistics (:mod:`mamlscope.models`), so a pool's features are computed in
one batch: the same pool always gives the same features.
"""
from __future__ import annotations

import math
import time
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp

from .stats import Score, mean_ci95
from .metrics.curvature import _quiet


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------
def first_layer_images(model) -> torch.Tensor:
    """``(units, h, w)``: a fully-connected first layer's rows as 28×28 images, or a first
    convolution's kernels (first input channel)."""
    if hasattr(model, "fc1"):
        w = model.fc1.linear.weight.detach()
        side = int(math.isqrt(w.shape[1]))
        return w.reshape(-1, side, side).cpu()
    return model.conv1.conv.weight.detach()[:, 0].cpu()


def _as_input(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(n, 28, 28)`` → ``(n, 1, 28, 28)`` in [0, 1], on ``like``'s device/dtype."""
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.to(like.device, like.dtype)


def features(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """``layer``'s activations on the pool ``x`` (one batch), flattened: ``(n, d)``."""
    p = next(model.parameters())
    with torch.no_grad():
        _, acts = model(_as_input(x, p), return_activations=True)
    return acts[layer].flatten(1).double().cpu()


def classify(model, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Per-example correctness of ``model``'s predictions on ``x`` (batches of ``batch``, batch
    statistics in each), ``(n,)`` float64."""
    p = next(model.parameters())
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append((model(_as_input(x[i:i + batch], p)).argmax(1).cpu() == y[i:i + batch]).double())
    return torch.cat(out)


def embed(f: torch.Tensor, method: str, seed: int = 0) -> np.ndarray:
    """``(n, 2)``: PCA, or t-SNE (perplexity 30, PCA initialisation, Barnes-Hut on one thread) with
    ``seed``, of the features scaled by their largest magnitude and rounded to 5 decimals, so
    that the same features give the same plane on any machine."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    a = f.numpy()
    # t-SNE is chaotic: a last-bit difference in the features (another CPU's kernels) moves the
    # whole plane. Rounding to 5 decimals of the largest value first keeps such differences out.
    scale = float(np.abs(a).max()) or 1.0
    a = np.round(a / scale, 5)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(a)
    if method == "tsne":  # one OpenMP thread: Barnes-Hut sums in thread order, so more threads change the digits
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return TSNE(2, perplexity=30.0, init="pca", random_state=seed).fit_transform(a)
    raise ValueError(f"method={method!r}; use 'pca' or 'tsne'.")


def knn_correct(f, y, k: int = 5) -> torch.Tensor:
    """Leave-one-out k-NN classification of every point by the others (Euclidean; a tie between
    classes goes to the one whose members are nearest on average): ``(n,)`` float64 of 0/1."""
    f = torch.as_tensor(np.asarray(f), dtype=torch.float64)
    y = torch.as_tensor(y)
    d = torch.cdist(f, f)
    d.fill_diagonal_(math.inf)
    dist, idx = d.topk(k, largest=False)
    labels = y[idx]
    n_cls = int(y.max()) + 1
    votes = F.one_hot(labels, n_cls).double().sum(1)                                  # (n, C)
    mean_d = (F.one_hot(labels, n_cls).double() * dist[..., None]).sum(1) / votes.clamp_min(1)
    score = votes - 1e-9 * mean_d                                                    # ties → nearer class
    return (score.argmax(1) == y).double()


def silhouette(f, y) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(np.asarray(f), np.asarray(y)))


def cluster_quality(f: torch.Tensor, y: torch.Tensor, *, k: int = 5, seed: int = 0) -> dict:
    """k-NN accuracy (per point) in the full space and in the PCA and t-SNE planes, the
    embeddings themselves, and the silhouette in the full space."""
    out = {"knn": knn_correct(f, y, k), "silhouette": silhouette(f, y)}
    for method in ("pca", "tsne"):
        out[method] = embed(f, method, seed)
        out[f"knn_{method}"] = knn_correct(out[method], y, k)
    return out


def quality_table(qualities: Mapping[str, dict]) -> pd.DataFrame:
    """One row per network: k-NN accuracy ± 95% CI (points as independent) in each space, and
    the silhouette."""
    def pct(s: Score) -> str:
        return f"{100 * s.mean:.1f} ± {100 * s.ci95:.1f}"

    return pd.DataFrame({name: {"k-NN, full space (%)": pct(mean_ci95(q["knn"])),
                                "k-NN, PCA plane (%)": pct(mean_ci95(q["knn_pca"])),
                                "k-NN, t-SNE plane (%)": pct(mean_ci95(q["knn_tsne"])),
                                "silhouette (full space)": f"{q['silhouette']:.3f}"}
                         for name, q in qualities.items()}).T


def unit_extremes(model, x: torch.Tensor, layer: str, units: Sequence[int], n: int = 5) -> dict:
    """For each unit of ``layer`` (a BatchNorm output such as ``"fc3.bn"``, or any named
    activation), the indices into the pool ``x`` of its ``n`` most and ``n`` least activating
    inputs: ``{unit: (most, least)}``."""
    a = features(model, x, layer)
    return {u: (a[:, u].argsort(descending=True)[:n], a[:, u].argsort()[:n]) for u in units}


# --------------------------------------------------------------------------------------------
# Agarwal's Eq. 2: the meta-gradient's Hessian-vector product by central differences
# --------------------------------------------------------------------------------------------
def _flat(d: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in d.values()])


def eq2_check(model, task, lr: float, eps_values: Sequence[float], dtype=torch.float64,
              repeats: int = 5) -> pd.DataFrame:
    """One-step MAML on ``task`` from the model's θ (all parameters but BatchNorm adapt):
    θ' = θ − α∇L_S(θ), meta-gradient g = (I − αH)∇L_Q(θ'), H the support loss's Hessian at θ.
    For each ε, the product Hv (v = ∇L_Q(θ')) by Eq. 2 against the exact one, and the
    meta-gradient built from each. Returns a row per ε: relative error of Hv, relative error of
    g, and the seconds of one Eq. 2 product over one exact product (medians of ``repeats``)."""
    from .models import adapted_parameter_names

    model = model.to(dtype)
    theta = {k: v.detach().to(dtype) for k, v in model.named_parameters()}
    names = adapted_parameter_names(model)
    frozen = {k: v for k, v in theta.items() if k not in names}
    q = {k: theta[k] for k in names}
    xs, ys, xq, yq = (t.to(dtype) if t.is_floating_point() else t for t in
                      (task.x_support, task.y_support, task.x_query, task.y_query))

    def support(p):
        return F.cross_entropy(functional_call(model, {**frozen, **p}, (xs,)), ys)

    def query(p):
        return F.cross_entropy(functional_call(model, {**frozen, **p}, (xq,)), yq)

    g_s = grad(support)(q)
    adapted = {k: q[k] - lr * g_s[k] for k in names}
    v = grad(query)(adapted)

    def exact():
        return _quiet(lambda: jvp(grad(support), (q,), (v,))[1])

    def central(eps):
        plus = grad(support)({k: q[k] + eps * v[k] for k in names})
        minus = grad(support)({k: q[k] - eps * v[k] for k in names})
        return {k: (plus[k] - minus[k]) / (2 * eps) for k in names}

    def seconds(f):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    hv = _flat(exact())
    g = _flat(v) - lr * hv
    t_exact = seconds(exact)
    rows = {}
    for eps in eps_values:
        approx = _flat(central(eps))
        g_fd = _flat(v) - lr * approx
        rows[eps] = {"Hv relative error": float((approx - hv).norm() / hv.norm()),
                     "meta-gradient relative error": float((g_fd - g).norm() / g.norm()),
                     "time / exact": seconds(lambda: central(eps)) / t_exact}
    out = pd.DataFrame(rows).T
    out.index.name = "ε"
    return out


# --------------------------------------------------------------------------------------------
# The chapter's inputs and the claims' values
# --------------------------------------------------------------------------------------------
def held_out_pool(dataset: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed pool of held-out inputs ``(uint8 (n, 28, 28), labels)``: ``n`` MNIST test images
    (a seeded random choice), or, for ``"omniglot"``, all 20 drawings of the first ``n // 20``
    characters of the test split (:func:`mamlscope.data.omniglot_subset`), classes no network here
    was trained on."""
    from . import data

    if dataset == "mnist":
        x, y = data.load_mnist(train=False)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return x[idx], y[idx]
    if dataset == "omniglot":
        chars = data.load_omniglot()[data.omniglot_subset("test", max(2, n // 20))]   # (C, 20, 28, 28)
        return chars.reshape(-1, *chars.shape[2:]), torch.arange(chars.shape[0]).repeat_interleave(chars.shape[1])
    raise ValueError(f"dataset={dataset!r}; use 'mnist' or 'omniglot'.")


def test_correct(run, device="cpu") -> torch.Tensor:
    """Per-image correctness of a supervised run's last checkpoint on its dataset's test split."""
    x, y = run.config.load(train=False)
    return classify(run.load_model(device=device), x, y)


def baseline_values(runs: Sequence, device="cpu") -> dict:
    """A1a: test accuracy per seed, their mean and t interval over seeds (``ci95`` its half-width)."""
    from .stats import t_interval as seed_interval

    accs = [float(test_correct(r, device).mean()) for r in runs]
    m, lo, hi = seed_interval(accs)
    return {"mean": m, "ci95": (hi - m) if len(accs) > 1 else math.nan, "seeds": len(accs),
            "by_seed": {str(i): a for i, a in enumerate(accs)}}


def supervised_values(q: dict, pool: int) -> dict:
    """A1: the supervised network's k-NN accuracy in its full space and in its 2-D planes."""
    full, tsne, pca = (mean_ci95(q[k]) for k in ("knn", "knn_tsne", "knn_pca"))
    return {"sup_knn": full.mean, "sup_knn_lo": full.mean - full.ci95, "sup_tsne": tsne.mean,
            "sup_tsne_lo": tsne.mean - tsne.ci95, "sup_pca": pca.mean, "pool": pool}


def pair_values(maml: dict, supervised: dict) -> dict:
    """A1b/A1c: k-NN accuracy (full space) of both networks on the same points, and the paired
    difference MAML − supervised with its 95% interval."""
    d = mean_ci95(maml["knn"] - supervised["knn"])
    return {"maml": float(maml["knn"].mean()), "supervised": float(supervised["knn"].mean()), "diff": d.mean,
            "diff_lo": d.mean - d.ci95, "diff_hi": d.mean + d.ci95, "pool": len(maml["knn"])}


def eq2_values(tables: Mapping[str, pd.DataFrame]) -> dict:
    """A1d: the smallest Hv relative error over ε per type, its ε, and the meta-gradient error
    there (timings depend on the machine and stay out of the verdict)."""
    v = {}
    for name, short in (("float64", "f64"), ("float32", "f32")):
        t = tables[name]
        eps = float(t["Hv relative error"].idxmin())
        v[f"{short}_best"], v[f"{short}_eps"] = float(t.loc[eps, "Hv relative error"]), eps
        v[f"{short}_meta"] = float(t.loc[eps, "meta-gradient relative error"])
    return v


def busiest_units(model, x: torch.Tensor, layer: str, n: int = 3) -> list[int]:
    """The ``n`` units of ``layer`` whose activation varies most over the pool ``x``: a rule for
    choosing units to show, fixed before looking at them."""
    return features(model, x, layer).var(0).argsort(descending=True)[:n].tolist()
