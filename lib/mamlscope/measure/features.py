"""What the features look like (Agarwal [A] §3.2), with numbers behind the pictures.

* :func:`first_layer_images` — the first layer's weights as images (a fully-connected unit's 784
  weights as 28×28; a convolution's 3×3 kernels);
* :func:`features` and :func:`embed` — a layer's activations on a fixed pool of held-out inputs,
  reduced to 2-D by PCA or t-SNE (scikit-learn, fixed seed);
* :func:`cluster_quality` — how well those features separate the classes: leave-one-out k-NN
  accuracy (per point, so two networks on the same points compare paired) in the full space and in
  each 2-D embedding, and the silhouette score;
* the controls, measured by the same code on the same points: :func:`pixels` (the raw pixels a
  network receives) and a random-init network (:func:`mamlscope.core.meta.init_model`); :func:`gain`,
  the paired difference of two k-NN correctness vectors, is what the claims' rules read;
* :func:`unit_extremes` — for chosen units, the inputs of the pool that activate them most and least;
* :func:`eq2_check` — Agarwal's Eq. 2, the Hessian-vector product of the one-step MAML
  meta-gradient by central differences, (∇L(θ + εv) − ∇L(θ − εv)) / 2ε, against the exact
  product (forward-over-reverse autodiff), over a range of ε; :func:`eq2_controls`, the same
  errors for the first-order approximation (Hv ≈ 0) and a random vector of Hv's norm.

BatchNorm uses batch statistics (:mod:`mamlscope.core.models`), so a pool's features are computed in
one batch: the same pool always gives the same features.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch.func import functional_call, grad, jvp

from mamlscope.core import data
from mamlscope.core.meta import init_model, train
from mamlscope.core.models import adapted_parameter_names
from mamlscope.evidence import Evidence, one_run
from mamlscope.metrics.curvature import _quiet
from mamlscope.stats import mean_ci95, paired_difference, prediction_interval, t_interval


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


def pixels(x: torch.Tensor) -> torch.Tensor:
    """The pool's raw pixels as the networks receive them (in [0, 1]), flattened: ``(n, h·w)``
    float64. The raw-pixel control of every "these features separate the classes" claim."""
    return _as_input(x, torch.zeros((), dtype=torch.float64)).flatten(1).cpu()


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


def cluster_quality(f: torch.Tensor, y: torch.Tensor, *, k: int = 5, seed: int = 0,
                    planes: Sequence[str] = ("pca", "tsne")) -> dict:
    """k-NN accuracy (per point) in the full space and in the ``planes`` (PCA, t-SNE; ``()``
    for the full space only), the embeddings themselves, and the silhouette in the full space."""
    out = {"knn": knn_correct(f, y, k), "silhouette": silhouette(f, y)}
    for method in planes:
        out[method] = embed(f, method, seed)
        out[f"knn_{method}"] = knn_correct(out[method], y, k)
    return out


def quality_table(qualities: Mapping[str, dict]) -> pd.DataFrame:
    """One row per network: k-NN accuracy ± 95% CI (points as independent) in each space, and
    the silhouette."""
    def pct(q: dict, key: str) -> str:
        if key not in q:
            return "—"
        s = mean_ci95(q[key])
        return f"{100 * s.mean:.1f} ± {100 * s.ci95:.1f}"

    return pd.DataFrame({name: {"k-NN, full space (%)": pct(q, "knn"),
                                "k-NN, PCA plane (%)": pct(q, "knn_pca"),
                                "k-NN, t-SNE plane (%)": pct(q, "knn_tsne"),
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


def _one_step(model, task, lr: float, dtype):
    """One-step MAML on ``task`` from the model's θ (all parameters but BatchNorm adapt):
    θ' = θ − α∇L_S(θ). Returns the adapted names' θ, the support loss, v = ∇L_Q(θ') and a
    function giving the exact product Hv (H the support loss's Hessian at θ)."""

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
    v = grad(query)({k: q[k] - lr * g_s[k] for k in names})

    def exact():
        return _quiet(lambda: jvp(grad(support), (q,), (v,))[1])

    return q, support, v, exact


def _errors(approx: torch.Tensor, hv: torch.Tensor, v: torch.Tensor, lr: float) -> dict:
    """How far an estimate of Hv is from the exact product, and how far the meta-gradient
    v − α·estimate is from the exact (I − αH)v: both relative to the exact ones' norms."""
    g = v - lr * hv
    return {"Hv relative error": float((approx - hv).norm() / hv.norm()),
            "meta-gradient relative error":
                float(((v - lr * approx) - g).norm() / g.norm())}


def eq2_check(model, task, lr: float, eps_values: Sequence[float], dtype=torch.float64,
              repeats: int = 5) -> pd.DataFrame:
    """One-step MAML on ``task`` from the model's θ: meta-gradient g = (I − αH)∇L_Q(θ'), H the
    support loss's Hessian at θ. For each ε, the product Hv (v = ∇L_Q(θ')) by Eq. 2 against the
    exact one, and the meta-gradient built from each. Returns a row per ε: relative error of Hv,
    relative error of g, and the seconds of one Eq. 2 product over one exact product (medians of
    ``repeats``)."""
    q, support, v, exact = _one_step(model, task, lr, dtype)

    def central(eps):
        plus = grad(support)({k: q[k] + eps * v[k] for k in q})
        minus = grad(support)({k: q[k] - eps * v[k] for k in q})
        return {k: (plus[k] - minus[k]) / (2 * eps) for k in q}

    def seconds(f):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    hv, v_flat = _flat(exact()), _flat(v)
    t_exact = seconds(exact)
    rows = {eps: {**_errors(_flat(central(eps)), hv, v_flat, lr),
                  "time / exact": seconds(lambda: central(eps)) / t_exact}
            for eps in eps_values}
    out = pd.DataFrame(rows).T
    out.index.name = "ε"
    return out


FIRST_ORDER, RANDOM_VECTOR = "first-order (Hv ≈ 0)", "random vector of Hv's norm"


def eq2_controls(model, task, lr: float, dtype=torch.float64,
                 seed: int = 0) -> pd.DataFrame:
    """A1d's controls, through the same relative-error code as :func:`eq2_check` on the same
    task and θ: the first-order approximation (Hv dropped, as first-order MAML does) and a
    random vector with the exact product's norm (drawn on the CPU in float64 with ``seed``)."""
    _, _, v, exact = _one_step(model, task, lr, dtype)
    hv, v_flat = _flat(exact()), _flat(v)
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(hv.shape, generator=gen, dtype=torch.float64)
    r = (r * (hv.double().norm().cpu() / r.norm())).to(hv.device, hv.dtype)
    return pd.DataFrame({FIRST_ORDER: _errors(torch.zeros_like(hv), hv, v_flat, lr),
                         RANDOM_VECTOR: _errors(r, hv, v_flat, lr)}).T


# --------------------------------------------------------------------------------------------
# The chapter's inputs and the claims' values
# --------------------------------------------------------------------------------------------
def held_out_pool(dataset: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed pool of held-out inputs ``(uint8 (n, 28, 28), labels)``: ``n`` MNIST test images
    (a seeded random choice), or, for ``"omniglot"``, all 20 drawings of the first ``n // 20``
    characters of the test split (:func:`mamlscope.core.data.omniglot_subset`), classes no network here
    was trained on."""

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
    return test_accuracy(run.load_model(device=device), run.config)


def test_accuracy(model, config) -> torch.Tensor:
    """Per-image correctness of ``model`` on the test split of ``config``'s dataset (a trained
    network, or its random initialisation, :func:`mamlscope.core.meta.init_model`: the same code)."""
    x, y = config.load(train=False)
    return classify(model, x, y)


def baseline_values(accuracies: Sequence[float]) -> dict:
    """A1a: test accuracy per seed, their mean with its t interval over seeds (``ci95`` its
    half-width), and the 95% prediction interval for one more run
    (:func:`mamlscope.stats.prediction_interval`), with which a paper's single run is compared."""
    accs = [float(a) for a in accuracies]
    m, lo, hi = t_interval(accs)
    p_lo, p_hi = prediction_interval(accs)
    return {"mean": m, "ci95": hi - m, "seeds": len(accs),
            "by_seed": {str(i): a for i, a in enumerate(accs)},
            "pi_lo": p_lo, "pi_hi": p_hi, "pi_half": (p_hi - p_lo) / 2}


def gain(name: str, a: torch.Tensor, b: torch.Tensor) -> dict:
    """``{name, name_lo, name_hi}``: the mean of ``a − b``, two per-point k-NN correctness
    vectors of the same points, with its 95% interval (:func:`mamlscope.stats.paired_difference`;
    points as independent)."""
    d = paired_difference(a, b)
    return {name: d.mean, f"{name}_lo": d.mean - d.ci95, f"{name}_hi": d.mean + d.ci95}


def _per_seed(name: str, by_seed: Mapping[str, torch.Tensor], b: torch.Tensor,
              minus: bool) -> dict:
    """``{name: {seed: mean}, name_lo: {seed: lower end}}`` of :func:`gain` for each seed's
    vector against ``b`` (``minus``: ``b`` − seed's instead)."""
    gains = {str(s): gain("g", b, c) if minus else gain("g", c, b)
             for s, c in by_seed.items()}
    return {name: {s: g["g"] for s, g in gains.items()},
            f"{name}_lo": {s: g["g_lo"] for s, g in gains.items()}}


def supervised_values(q: dict, raw: dict, random: dict,
                      by_seed: Mapping[str, torch.Tensor] | None = None) -> dict:
    """A1: a layer's k-NN accuracy (:func:`cluster_quality` ``q``) in its full space and in its
    planes, and its gains over the controls on the same points: raw pixels (full space and t-SNE
    plane, ``raw``) and a random-init network (full space, ``random``). ``by_seed``: the full
    space's per-point correctness of each seed's layer, for its gain over raw pixels seed by seed.
    The same function gives the control's values, with the random-init network as ``q``."""
    full, tsne, pca = (mean_ci95(q[k]) for k in ("knn", "knn_tsne", "knn_pca"))
    v = {"sup_knn": full.mean, "sup_knn_lo": full.mean - full.ci95, "sup_tsne": tsne.mean,
         "sup_tsne_lo": tsne.mean - tsne.ci95, "sup_pca": pca.mean, "pool": len(q["knn"]),
         "raw_knn": float(raw["knn"].mean()), "raw_tsne": float(raw["knn_tsne"].mean()),
         "random_knn": float(random["knn"].mean()),
         **gain("gain_raw", q["knn"], raw["knn"]),
         **gain("gain_raw_tsne", q["knn_tsne"], raw["knn_tsne"]),
         **gain("gain_random", q["knn"], random["knn"])}
    if by_seed:
        v.update(_per_seed("seed_gain_raw", by_seed, raw["knn"], minus=False))
    return v


def pair_values(maml: dict, supervised: dict, raw: dict, random: dict,
                supervised_by_seed: Mapping[str, torch.Tensor] | None = None) -> dict:
    """A1b/A1c: k-NN accuracy (full space) of both networks on the same points, the paired
    difference MAML − supervised with its 95% interval, and MAML's gains over the controls on
    the same points: raw pixels (``raw``) and a random-init network (``random``).
    ``supervised_by_seed``: each supervised seed's per-point correctness, for MAML − supervised
    seed by seed. The same function gives a control's values, with the control as ``maml``."""
    v = {"maml": float(maml["knn"].mean()), "supervised": float(supervised["knn"].mean()),
         **gain("diff", maml["knn"], supervised["knn"]), "pool": len(maml["knn"]),
         "raw": float(raw["knn"].mean()), "random": float(random["knn"].mean()),
         **gain("gain_raw", maml["knn"], raw["knn"]),
         **gain("gain_random", maml["knn"], random["knn"])}
    if supervised_by_seed:
        v.update(_per_seed("seed_diff", supervised_by_seed, maml["knn"], minus=True))
    return v


def eq2_values(tables: Mapping[str, pd.DataFrame],
               controls: Mapping[str, pd.DataFrame]) -> dict:
    """A1d: the smallest Hv relative error over ε per type, its ε, the meta-gradient error
    there, and that error over the first-order approximation's (``controls``:
    :func:`eq2_controls` per type). Timings depend on the machine and stay out of the verdict."""
    v = {}
    for name, short in (("float64", "f64"), ("float32", "f32")):
        t = tables[name]
        eps = float(t["Hv relative error"].idxmin())
        v[f"{short}_best"], v[f"{short}_eps"] = float(t.loc[eps, "Hv relative error"]), eps
        v[f"{short}_meta"] = float(t.loc[eps, "meta-gradient relative error"])
    first = float(controls["float32"].loc[FIRST_ORDER, "meta-gradient relative error"])
    v["f32_first_order_meta"], v["f32_meta_ratio"] = first, v["f32_meta"] / first
    return v


def eq2_null_values(controls: Mapping[str, pd.DataFrame], row: str = FIRST_ORDER) -> dict:
    """A1d's control under the rule's keys: the control ``row`` of :func:`eq2_controls` in place
    of Eq. 2's best estimate (it has no ε to choose)."""
    first = float(controls["float32"].loc[FIRST_ORDER, "meta-gradient relative error"])
    v = {f"{short}_best": float(controls[name].loc[row, "Hv relative error"])
         for name, short in (("float64", "f64"), ("float32", "f32"))}
    v["f32_meta"] = float(controls["float32"].loc[row, "meta-gradient relative error"])
    v["f32_meta_ratio"] = v["f32_meta"] / first
    return v


def busiest_units(model, x: torch.Tensor, layer: str, n: int = 3) -> list[int]:
    """The ``n`` units of ``layer`` whose activation varies most over the pool ``x``: a rule for
    choosing units to show, fixed before looking at them."""
    return features(model, x, layer).var(0).argsort(descending=True)[:n].tolist()


# --------------------------------------------------------------------------------------------
# Chapter 7's measurements: one Evidence per claim
# --------------------------------------------------------------------------------------------
RAW, BEFORE, REFERENCE = "raw pixels (control)", "before training (control)", "random init, seed 1 (reference)"
PAIR_COLUMNS = {"diff": "− supervised (points)", "gain_raw": "− raw pixels", "gain_random": "− random init"}


@dataclass
class FeatureRuns:
    """The fully-connected MNIST networks of chapter 7: the supervised seeds, the MAML network,
    and the supervised configuration's random initialisations (seed → model; at least 2)."""

    supervised: list
    maml: object
    inits: dict
    config: object  # the supervised configuration

    def __str__(self) -> str:
        return f"supervised: {', '.join(r.dir.name for r in self.supervised)} | MAML: {self.maml.dir.name}"

    def labelled(self) -> dict:
        return {**{f"supervised seed {s}": r for s, r in enumerate(self.supervised)}, "MAML": self.maml}

    def models(self, device="cpu") -> dict:
        """Supervised seed 0 and MAML, trained, by label."""
        return {"supervised (seed 0)": self.supervised[0].load_model(device=device),
                "MAML": self.maml.load_model(device=device)}


def feature_runs(P, device="cpu") -> FeatureRuns:
    """Train (or load from the cache) :class:`FeatureRuns` at profile ``P``."""
    sup = [train(replace(P.features_supervised, seed=s), device=device) for s in range(P.features_seeds)]
    inits = {s: init_model(replace(P.features_supervised, seed=s), device)
             for s in range(max(2, P.features_seeds))}
    return FeatureRuns(sup, train(P.features_maml, device=device), inits, P.features_supervised)


@dataclass
class Pool:
    """One layer's features of several networks on one fixed pool of held-out inputs ``x``
    (labels ``y``): :func:`cluster_quality` per network and control in ``quality`` (the
    figure's), and controls measured in the full space only (``controls``); ``models`` by label;
    ``by_seed``/``init_by_seed``: per-point k-NN correctness of each supervised seed / each
    random initialisation (full space)."""

    x: torch.Tensor
    y: torch.Tensor
    quality: dict
    controls: dict
    models: dict
    by_seed: dict = field(default_factory=dict)
    init_by_seed: dict = field(default_factory=dict)
    run: object = None

    def table(self) -> pd.DataFrame:
        return quality_table({**self.quality, **self.controls})


def fc_pool(runs: FeatureRuns, n: int, device="cpu") -> Pool:
    """The fc4 features (64-d) of the supervised (seed 0) and the MAML network, raw pixels, the
    network before training (seed 0) and a second random initialisation (the reference), on
    ``n`` held-out MNIST test images."""
    x, y = held_out_pool("mnist", n)
    sup, mam = runs.supervised[0].load_model(device=device), runs.maml.load_model(device=device)

    def fc4(model):
        return features(model, x, "fc4")

    quality = {"supervised": cluster_quality(fc4(sup), y), "MAML": cluster_quality(fc4(mam), y),
               RAW: cluster_quality(pixels(x), y), BEFORE: cluster_quality(fc4(runs.inits[0]), y)}
    return Pool(x, y, quality, {REFERENCE: cluster_quality(fc4(runs.inits[1]), y, planes=())},
                {"supervised": sup, "MAML": mam},
                {str(s): knn_correct(fc4(r.load_model(device=device)), y) for s, r in enumerate(runs.supervised)},
                {str(s): knn_correct(fc4(runs.inits[s]), y) for s in range(len(runs.supervised))})


def conv_pool(P, n: int = 400, device="cpu") -> Pool:
    """The conv4 features of the book's 20-way MAML Conv4 and the supervised Conv4 (1,200
    training characters as classes), on all drawings of the first ``n // 20`` held-out Omniglot
    characters, with raw pixels, the MAML network before training and a second random
    initialisation as controls."""
    maml_run = train(P.meta("omniglot_20w1s"), device=device)
    maml = maml_run.load_model(device=device)
    sup = train(P.omniglot_supervised, device=device).load_model(device=device)
    x, y = held_out_pool("omniglot", n)

    def conv4(model):
        return features(model, x, "conv4")

    init = {s: init_model(replace(P.meta("omniglot_20w1s"), seed=s), device) for s in (0, 1)}
    quality = {"MAML (20-way)": cluster_quality(conv4(maml), y),
               "supervised (1,200 classes)": cluster_quality(conv4(sup), y)}
    controls = {RAW: cluster_quality(pixels(x), y, planes=()), BEFORE: cluster_quality(conv4(init[0]), y, planes=()),
                REFERENCE: cluster_quality(conv4(init[1]), y, planes=())}
    return Pool(x, y, quality, controls, {"MAML (20-way)": maml, "supervised (1,200 classes)": sup}, run=maml_run)


def a1a_evidence(runs: FeatureRuns, device="cpu") -> Evidence:
    """A1a: the supervised seeds' MNIST test accuracy, against the same networks before training."""
    v = baseline_values([test_correct(r, device).mean() for r in runs.supervised])
    null = baseline_values([test_accuracy(runs.inits[s], runs.config).mean() for s in range(len(runs.supervised))])
    return Evidence("A1a", v, {BEFORE: null},
                    {"n": v["seeds"], "values": v["by_seed"], "note": "one run per seed; the prediction interval is over them"},
                    label="trained (ours)", fmt="{:.2f}",
                    columns={"mean": "mean (%)", "pi_lo": "prediction interval, low (%)",
                             "pi_hi": "prediction interval, high (%)"})


def a1_evidence(fc: Pool) -> Evidence:
    """A1: the supervised fc4's k-NN accuracy and its gains over raw pixels and a random
    initialisation, against the network before training, measured by the same code."""
    raw, ref = fc.quality[RAW], fc.controls[REFERENCE]
    return Evidence("A1", supervised_values(fc.quality["supervised"], raw, ref, by_seed=fc.by_seed),
                    {BEFORE: supervised_values(fc.quality[BEFORE], raw, ref, by_seed=fc.init_by_seed)},
                    per_seed="seed_gain_raw", label="supervised, seed 0",
                    columns={"gain_raw": "gain over raw pixels, 64-d (points)", "gain_random": "over random init, 64-d",
                             "gain_raw_tsne": "over raw pixels, t-SNE plane"})


def a1b_evidence(fc: Pool) -> Evidence:
    """A1b: MAML's fc4 against the supervised one on the same images (and per supervised seed),
    against the network before training and raw pixels in MAML's place."""
    raw, ref, sup = fc.quality[RAW], fc.controls[REFERENCE], fc.quality["supervised"]

    def pair(q):
        return pair_values(q, sup, raw, ref, supervised_by_seed=fc.by_seed)

    return Evidence("A1b", pair(fc.quality["MAML"]), {BEFORE: pair(fc.quality[BEFORE]), RAW: pair(raw)},
                    one_run("one MAML FC run, compared with each supervised seed"), per_seed="seed_diff",
                    label="MAML", columns=PAIR_COLUMNS)


def a1c_evidence(conv: Pool) -> Evidence:
    """A1c: the 20-way MAML Conv4's conv4 against the supervised Conv4's on held-out characters,
    against the network before training and raw pixels in MAML's place."""
    raw, ref, sup = conv.controls[RAW], conv.controls[REFERENCE], conv.quality["supervised (1,200 classes)"]
    return Evidence("A1c", pair_values(conv.quality["MAML (20-way)"], sup, raw, ref),
                    {BEFORE: pair_values(conv.controls[BEFORE], sup, raw, ref), RAW: pair_values(raw, sup, raw, ref)},
                    one_run("one 20-way MAML run (the book's costliest) and one supervised Conv4"), conv.run,
                    label="MAML (20-way)", columns=PAIR_COLUMNS)


def first_layers(models: Mapping[str, object]) -> dict:
    """Label → :func:`first_layer_images` of each model, for the filter figures."""
    return {name: first_layer_images(m) for name, m in models.items()}


def unit_extremes_of(models: Mapping[str, object], x: torch.Tensor, layers=("fc3.bn", "fc4.bn"), n: int = 3,
                     shown: int = 5) -> dict:
    """:func:`unit_extremes` of the ``n`` busiest units of each layer of each model
    (``"<model> <layer>"`` → extremes), for the figure."""
    return {f"{name} {layer}": unit_extremes(model, x, layer, busiest_units(model, x, layer, n=n), n=shown)
            for name, model in models.items() for layer in layers}


@dataclass
class Eq2:
    """A1d's measurements on one θ and task, per float type: :func:`eq2_check` over ε
    (``checks``) and :func:`eq2_controls` (``controls``)."""

    checks: dict
    controls: dict

    def errors(self) -> pd.DataFrame:
        return pd.concat({k: t[["Hv relative error", "meta-gradient relative error"]] for k, t in self.checks.items()},
                         axis=1).map("{:.1e}".format).rename(index="{:.0e}".format)

    def control_errors(self) -> pd.DataFrame:
        return pd.concat(self.controls, axis=1).map("{:.1e}".format)

    def timings(self) -> pd.DataFrame:
        return pd.DataFrame({k: t["time / exact"] for k, t in self.checks.items()}).round(2).rename(index="{:.0e}".format)


def eq2_study(run, device="cpu", eps=tuple(10.0 ** -k for k in range(1, 9))) -> Eq2:
    """:class:`Eq2` for ``run``'s last checkpoint on its first fixed test task, with its inner
    step size, in float64 and float32."""
    task, lr = run.config.test_tasks(1)[0], run.config.inner_lr
    types = {"float64": torch.float64, "float32": torch.float32}
    return Eq2({k: eq2_check(run.load_model(device=device), task, lr, list(eps), dtype=t) for k, t in types.items()},
               {k: eq2_controls(run.load_model(device=device), task, lr, dtype=t) for k, t in types.items()})


def a1d_evidence(eq2: Eq2) -> Evidence:
    """A1d: Eq. 2's best errors and its float32 meta-gradient error over first-order's, against
    the first-order approximation (and a random vector beside)."""
    return Evidence("A1d", eq2_values(eq2.checks, eq2.controls),
                    {f"{FIRST_ORDER} (control)": eq2_null_values(eq2.controls),
                     f"{RANDOM_VECTOR} (control)": eq2_null_values(eq2.controls, RANDOM_VECTOR)},
                    one_run("a numerical check on one θ and task; no training seeds"), label="Eq. 2, best ε",
                    fmt="{:.1e}", scale=1.0,
                    columns={"f64_best": "Hv error, float64", "f32_best": "Hv error, float32",
                             "f32_meta": "meta-gradient error, float32", "f32_meta_ratio": "… over first-order's"})
