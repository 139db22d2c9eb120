"""Inner-loop adaptation: K differentiable SGD steps on a task's support set.

For parameters θ, support set S and step size α, one inner step is

    θ' = θ − α ∇_θ L_S(θ)        (only the *adapted* parameters move; the rest stay at θ)

and after K steps the task's query loss L_Q(θ_K(θ)) is differentiable in θ. The support loss L_S
is reduced over the support set's N·K examples in one of two ways (``InnerLoop.reduction``):

* ``"mean"``  — L_S = (1/NK) Σᵢ ℓᵢ, the mean cross-entropy;
* ``"sum/k"`` — L_S = (1/K) Σᵢ ℓᵢ = N · mean, as in Finn et al.'s released code (``utils.xent``
  divides each example's cross-entropy by K, and ``tf.gradients`` sums them). The same α then
  takes an N times larger step: α = 0.4 at 5-way is 2.0 on the mean loss, so is α = 0.1 at 20-way. Second order keeps
the dependence of ∇L_S on θ; first order (FOMAML) treats each ∇L_S as a constant, so
dθ_K/dθ = I. Which parameters adapt is a list of names (all = MAML, head only = ANIL, layers ≥ k).

Two backends compute the same thing:

* ``"func"``   — ``torch.func``: ``functional_call`` + ``grad``, ``vmap``-ed over the tasks of a
  meta-batch (the fast one; after PyTorch's ``torch.func`` MAML example);
* ``"loop"``   — ``functional_call`` and ``torch.autograd.grad`` (``create_graph`` for second
  order), one task at a time: no ``vmap``, no monkey-patching (its speed against the others:
  ``benchmarks/bench_meta_step.py``);
* ``"higher"`` — Grefenstette et al.'s ``higher``: a monkey-patched module and a differentiable
  SGD optimiser, one task at a time (the reference).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import higher
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from mamlscope.core.data import Task
from mamlscope.core.models import adapted_parameter_names, head_input, layer_of

Params = dict[str, torch.Tensor]
BACKENDS = ("func", "loop", "higher")


REDUCTIONS = ("mean", "sum/k")


@dataclass(frozen=True)
class InnerLoop:
    """What the inner loop does: ``steps`` SGD steps of size ``lr`` on the parameters chosen by
    ``adapt`` (see :func:`mamlscope.core.models.adapted_parameter_names`), first or second order, on
    the support loss reduced by ``reduction`` (``"mean"`` or Finn et al.'s ``"sum/k"``)."""

    steps: int = 1
    lr: float = 0.4
    adapt: str = "all"
    first_order: bool = False
    reduction: str = "mean"

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"InnerLoop.steps={self.steps} must be >= 0.")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"InnerLoop.reduction={self.reduction!r}; use one of {list(REDUCTIONS)}.")

    def __str__(self) -> str:
        """In words, for readers: "5 steps of α = 0.1 on the mean support loss, all layers"."""
        what = {"all": "all layers", "head": "the head only"}.get(self.adapt, adapted_text(self.adapt))
        loss = "Σℓ/K support loss" if self.reduction == "sum/k" else "mean support loss"
        order = ", first order" if self.first_order else ""
        return f"{self.steps} step{'s' if self.steps != 1 else ''} of α = {self.lr:g} on the {loss}, {what}{order}"


def adapted_text(adapt: str) -> str:
    """``"from:conv3"`` → ``"conv3 and the layers above it"``; other values as they are."""
    return f"{adapt[5:]} and the layers above it" if adapt.startswith("from:") else adapt


def cross_entropy_and_accuracy(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.cross_entropy(out, y), (out.argmax(-1) == y).float().mean()


def mse_and_negative_mse(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For regression the "accuracy" slot carries −MSE (higher is better), as in [L] §5.3.1."""
    loss = ((out - y) ** 2).mean()  # not F.mse_loss: its backward breaks forward-over-reverse HVPs under vmap
    return loss, -loss.detach()


LOSSES: dict[str, Callable] = {"cross_entropy": cross_entropy_and_accuracy, "mse": mse_and_negative_mse}


def _loss_fn(loss: str) -> Callable:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)}.")
    return LOSSES[loss]


def support_loss_fn(loss: str, reduction: str = "mean") -> Callable:
    """``(output, target) → L_S``, the loss the inner loop descends (see the module docstring).

    ``"sum/k"``: Σᵢ ℓᵢ / K, with K = (N·K examples) / (N outputs) read off the shapes, so it
    also works inside ``vmap``. Only for classification (Finn's sinusoid loss is the mean).
    """
    loss_fn = _loss_fn(loss)
    if reduction == "mean":
        return lambda out, y: loss_fn(out, y)[0]
    if reduction == "sum/k":
        if loss != "cross_entropy":
            raise ValueError(f"reduction 'sum/k' is Finn et al.'s cross-entropy; use 'mean' for loss {loss!r}.")
        return lambda out, y: F.cross_entropy(out, y, reduction="sum") * out.shape[-1] / out.shape[0]
    raise ValueError(f"unknown reduction {reduction!r}; use one of {list(REDUCTIONS)}.")


def model_params(model: torch.nn.Module) -> Params:
    """θ as a dict of the model's own parameter tensors (gradients flow back to them)."""
    return dict(model.named_parameters())


def detached(params: Mapping[str, torch.Tensor]) -> Params:
    """θ cut from the autograd graph: for measuring, not for meta-gradients."""
    return {n: p.detach() for n, p in params.items()}


# --------------------------------------------------------------------------------------------
# torch.func backend
# --------------------------------------------------------------------------------------------
def frozen_prefix(model, params: Mapping[str, torch.Tensor], x: torch.Tensor, names: list[str]):
    """The layers below the first adapted one do not move in the inner loop, so their output on
    the support set is the same at every step: compute it once. Returns ``(input, start)`` for
    ``model(input, start=start)`` — ``(x, None)`` when the first layer adapts (MAML). Exact: the
    same operations on the same inputs (batch statistics included) as a full forward per step,
    and still differentiable w.r.t. the frozen parameters (the outer loop trains them)."""
    layers = list(model.layer_names)
    first = min(layers.index(layer_of(n)) for n in names) if names else len(layers) - 1
    if first == 0:
        return x, None
    _, acts = functional_call(model, dict(params), (x,), {"return_activations": True})
    return acts[layers[first - 1]], layers[first]


def adapt(model: torch.nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
          inner: InnerLoop, *, loss: str = "cross_entropy", trajectory: bool = False):
    """Adapt ``params`` to the support set ``(x, y)`` of one task (``torch.func`` backend).

    Returns θ_K as a dict (or, with ``trajectory=True``, the list ``[θ_0, θ_1, …, θ_K]``). The
    result stays differentiable w.r.t. ``params``; call inside ``vmap`` to adapt many tasks.
    """
    names = adapted_parameter_names(model, inner.adapt)
    fast = {n: params[n] for n in names}
    frozen = {n: p for n, p in params.items() if n not in fast}
    loss_fn = support_loss_fn(loss, inner.reduction)
    x, start = frozen_prefix(model, params, x, names)

    def support_loss(fast_, x_, y_):
        return loss_fn(functional_call(model, (fast_, frozen), (x_,), {"start": start}), y_)

    path = [{**frozen, **fast}]
    for _ in range(inner.steps):
        g = grad(support_loss)(fast, x, y)
        if inner.first_order:
            g = {n: gn.detach() for n, gn in g.items()}
        fast = {n: fast[n] - inner.lr * g[n] for n in names}
        if trajectory:
            path.append({**frozen, **fast})
    return path if trajectory else {**frozen, **fast}


def coherence_correction(fast: Mapping[str, torch.Tensor], theta: Mapping[str, torch.Tensor],
                         gamma: float) -> Params:
    """[L] Algorithm 1: pull each task's adapted parameters towards the batch's mean update direction.

    With Δᵢ = θ̃ᵢ − θ over the adapted parameters (``fast``: ``(B, …)`` tensors, ``theta``: θ),
    θ⃗ᵢ = Δᵢ/‖Δᵢ‖ and θ⃗_μ = (1/B) Σⱼ θ⃗ⱼ, the penalty Ωᵢ = −θ⃗ᵢᵀθ⃗_μ and the corrected solution

        θ̂ᵢ = θ̃ᵢ − γ ∇_{θ̃ᵢ} Ωᵢ = θ̃ᵢ + γ (I − θ⃗ᵢθ⃗ᵢᵀ) θ⃗_μ / ‖Δᵢ‖

    (θ⃗ᵢ's own share of θ⃗_μ has zero gradient: (I − θ⃗ᵢθ⃗ᵢᵀ)θ⃗ᵢ = 0). The correction is a
    differentiable function of θ, so the meta-gradient flows through it as through θ̃ᵢ.
    """
    names = list(fast)
    b = fast[names[0]].shape[0]
    delta = torch.cat([(fast[n] - theta[n]).reshape(b, -1) for n in names], dim=1)
    norm = delta.norm(dim=1, keepdim=True)
    u = delta / norm
    mu = u.mean(0)
    step = gamma * (mu - (u @ mu)[:, None] * u) / norm
    out, i = {}, 0
    for n in names:
        k = fast[n][0].numel()
        out[n] = fast[n] + step[:, i:i + k].reshape(fast[n].shape)
        i += k
    return out


def query_loss_func(model, params: Mapping[str, torch.Tensor], tasks: Task, inner: InnerLoop,
                    *, loss: str = "cross_entropy", coherence_gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task query loss and accuracy after adaptation, ``vmap``-ed over a batch of tasks.

    ``tasks`` carries a leading task axis; returns two tensors of shape ``(n_tasks,)``. With
    ``coherence_gamma`` γ > 0 the adapted parameters are corrected by :func:`coherence_correction`
    (across the batch) before the queries are scored.
    """
    loss_fn = _loss_fn(loss)
    if not coherence_gamma:
        def one_task(p, xs, ys, xq, yq):
            fast = adapt(model, p, xs, ys, inner, loss=loss)
            return loss_fn(functional_call(model, fast, (xq,)), yq)

        return vmap(one_task, in_dims=(None, 0, 0, 0, 0), randomness="error")(
            dict(params), tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)
    names = adapted_parameter_names(model, inner.adapt)
    fast = vmap(lambda p, xs, ys: {n: v for n, v in adapt(model, p, xs, ys, inner, loss=loss).items() if n in names},
                in_dims=(None, 0, 0), randomness="error")(dict(params), tasks.x_support, tasks.y_support)
    fast = coherence_correction(fast, params, coherence_gamma)
    frozen = {n: p for n, p in params.items() if n not in fast}
    return vmap(lambda q, xq, yq: loss_fn(functional_call(model, (frozen, q), (xq,)), yq), randomness="error")(
        fast, tasks.x_query, tasks.y_query)


# --------------------------------------------------------------------------------------------
# loop backend: torch.autograd.grad per task
# --------------------------------------------------------------------------------------------
def adapt_autograd(model, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                   inner: InnerLoop, *, loss: str = "cross_entropy") -> Params:
    """:func:`adapt` for one task with ``torch.autograd.grad`` instead of ``torch.func.grad``:
    the same steps, differentiable w.r.t. ``params`` (second order: ``create_graph=True``)."""
    names = adapted_parameter_names(model, inner.adapt)
    fast = {n: params[n] if params[n].requires_grad else params[n].detach().requires_grad_() for n in names}
    frozen = {n: p for n, p in params.items() if n not in fast}
    loss_fn = support_loss_fn(loss, inner.reduction)
    x, start = frozen_prefix(model, params, x, names)
    for _ in range(inner.steps):
        out = functional_call(model, (fast, frozen), (x,), {"start": start})
        g = torch.autograd.grad(loss_fn(out, y), [fast[n] for n in names], create_graph=not inner.first_order)
        fast = {n: fast[n] - inner.lr * gn for n, gn in zip(names, g)}  # first order: gn is a constant
    return {**frozen, **fast}


def query_loss_loop(model, params: Mapping[str, torch.Tensor], tasks: Task, inner: InnerLoop,
                    *, loss: str = "cross_entropy", coherence_gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as :func:`query_loss_func`, one task at a time with :func:`adapt_autograd`."""
    loss_fn = _loss_fn(loss)
    with torch.enable_grad():  # the inner loop differentiates even when the caller does not
        fast = [adapt_autograd(model, params, tasks.x_support[i], tasks.y_support[i], inner, loss=loss)
                for i in range(len(tasks))]
    names = adapted_parameter_names(model, inner.adapt)
    if coherence_gamma:
        stacked = coherence_correction({n: torch.stack([f[n] for f in fast]) for n in names}, params,
                                       coherence_gamma)
        fast = [{**f, **{n: stacked[n][i] for n in names}} for i, f in enumerate(fast)]
    out = [loss_fn(functional_call(model, f, (tasks.x_query[i],)), tasks.y_query[i]) for i, f in enumerate(fast)]
    losses, accs = zip(*out)
    return torch.stack(losses), torch.stack(accs)


# --------------------------------------------------------------------------------------------
# higher backend (reference)
# --------------------------------------------------------------------------------------------
def query_loss_higher(model, tasks: Task, inner: InnerLoop, *, loss: str = "cross_entropy",
                      coherence_gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as :func:`query_loss_func`, with ``higher`` and a loop over tasks. Gradients flow to
    ``model.parameters()`` (``copy_initial_weights=False``). Head-only adaptation (ANIL) is
    written as the usual implementations write it: the body runs once per support and query set
    (differentiably, so the meta-gradient reaches it) and ``higher`` adapts the head alone."""
    if inner.adapt == "head" and not coherence_gamma and hasattr(model, "head"):
        return _head_only_higher(model, tasks, inner, loss)

    loss_fn = _loss_fn(loss)
    inner_loss = support_loss_fn(loss, inner.reduction)
    names = set(adapted_parameter_names(model, inner.adapt))
    named = model_params(model)
    groups = [{"params": [p for n, p in named.items() if n in names], "lr": inner.lr}]
    frozen = [p for n, p in named.items() if n not in names]
    if frozen:
        groups.append({"params": frozen, "lr": 0.0})
    opt = torch.optim.SGD(groups, lr=inner.lr)
    detach = (lambda gs: [None if g is None else g.detach() for g in gs]) if inner.first_order else None
    adapted = []  # (functional model, its fast weights) per task
    for i in range(len(tasks)):
        t = tasks[i]
        with higher.innerloop_ctx(model, opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(inner.steps):
                diffopt.step(inner_loss(fmodel(t.x_support), t.y_support), grad_callback=detach)
            if not coherence_gamma:
                adapted.append(loss_fn(fmodel(t.x_query), t.y_query))
            else:
                adapted.append((fmodel, list(fmodel.parameters())))
    if coherence_gamma:
        keys = [n for n in named if n in names]
        fast = {n: torch.stack([dict(zip(named, w))[n] for _, w in adapted]) for n in keys}
        fast = coherence_correction(fast, named, coherence_gamma)
        out = []
        for i, (fmodel, w) in enumerate(adapted):
            weights = [fast[n][i] if n in fast else p for n, p in zip(named, w)]
            out.append(loss_fn(fmodel(tasks[i].x_query, params=weights), tasks[i].y_query))
        adapted = out
    losses, accs = zip(*adapted)
    return torch.stack(losses), torch.stack(accs)


def _head_only_higher(model, tasks: Task, inner: InnerLoop, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    loss_fn, inner_loss = _loss_fn(loss), support_loss_fn(loss, inner.reduction)
    body = model.layer_names[-2]
    opt = torch.optim.SGD(model.head.parameters(), lr=inner.lr)
    detach = (lambda gs: [None if g is None else g.detach() for g in gs]) if inner.first_order else None
    out = []
    for i in range(len(tasks)):
        t = tasks[i]
        fs = head_input(model, model(t.x_support, return_activations=True)[1][body])
        fq = head_input(model, model(t.x_query, return_activations=True)[1][body])
        with higher.innerloop_ctx(model.head, opt, copy_initial_weights=False) as (fhead, diffopt):
            for _ in range(inner.steps):
                diffopt.step(inner_loss(fhead(fs), t.y_support), grad_callback=detach)
            out.append(loss_fn(fhead(fq), t.y_query))
    losses, accs = zip(*out)
    return torch.stack(losses), torch.stack(accs)


def query_loss(model, tasks: Task, inner: InnerLoop, *, loss: str = "cross_entropy",
               backend: str = "func", coherence_gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task query loss and accuracy after ``inner`` adaptation from the model's θ (corrected
    by :func:`coherence_correction` when ``coherence_gamma`` > 0)."""
    if backend == "func":
        return query_loss_func(model, model_params(model), tasks, inner, loss=loss, coherence_gamma=coherence_gamma)
    if backend == "loop":
        return query_loss_loop(model, model_params(model), tasks, inner, loss=loss, coherence_gamma=coherence_gamma)
    if backend == "higher":
        return query_loss_higher(model, tasks, inner, loss=loss, coherence_gamma=coherence_gamma)
    raise ValueError(f"unknown inner-loop backend {backend!r}; use one of {list(BACKENDS)}.")
