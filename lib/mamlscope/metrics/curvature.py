"""Curvature of the loss at adapted solutions: the Hessian's spectral norm (Guiroy et al. [L] §4.1).

[L] measure the flatness of a meta-test solution ``θ̃_i`` (the parameters after the inner loop on
the support set ``D_i``) by the spectral norm of the Hessian of the support loss,

    ‖H‖_σ = sqrt(λ_max(HᵀH)) = max_k |λ_k(H)|,     H = ∇²_θ L(f(D_i; θ̃_i)),

and average it over meta-test tasks ([L] eq. 4).  [L] eq. 3 writes this as ``λ_max(H)``, which is
the same number only when the eigenvalue of largest magnitude is positive; this module returns the
**largest-magnitude eigenvalue's absolute value** (the spectral norm) and, separately, its sign.

The Hessian is never formed.  Hessian-vector products ``Hv`` come from ``torch.func``:
forward-over-reverse ``jvp(grad(L), θ, v)`` (default) or reverse-over-reverse ``vjp(grad(L), θ)``.
Two eigen-solvers are available:

* ``method="power"`` — power iteration ``v ← Hv / ‖Hv‖``; the estimate ``‖Hv‖`` increases
  monotonically towards ``max|λ|``; stops when its relative change is ≤ ``tol``.
* ``method="lanczos"`` — Lanczos with full re-orthogonalisation; after step ``j`` the Ritz values
  are the eigenvalues of the ``j×j`` tridiagonal matrix (``eigvalsh``); stops when the Lanczos
  residual bound ``β_j |s_j|`` of the largest-magnitude Ritz pair is ≤ ``tol · |θ|``.  Usually
  needs far fewer Hessian-vector products than power iteration (10–30).

The loss is an arbitrary function of a parameter dict, so no ``nn.Module`` or eval mode is needed:
a model called through ``torch.func.functional_call`` with ``BatchNorm2d(track_running_stats=
False)`` uses the current batch's statistics (MAML's transductive batch norm) and the Hessian then
includes the dependence of those statistics on the parameters — unlike PyHessian, which needs a
module and switches it to eval mode.

**Parameter subsets.**  Only the entries of ``params`` are differentiated; the result is the
spectral norm of that diagonal block of the full Hessian (e.g. pass just ``{"head.weight",
"head.bias"}`` for the head block).  ``loss_fn`` must merge in the remaining, fixed parameters
itself, e.g. ``functional_call(model, {**frozen, **p}, (x,))``.
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping, NamedTuple

import torch
from torch.func import grad, jvp, vjp, vmap

__all__ = [
    "HessianEigen",
    "hessian_vector_product",
    "hessian_top_eigen",
    "hessian_spectral_norm",
    "hessian_spectral_norm_batched",
]

_METHODS = ("power", "lanczos")
_HVP_MODES = ("forward-over-reverse", "reverse-over-reverse")


class HessianEigen(NamedTuple):
    """Result of :func:`hessian_top_eigen`.

    ``spectral_norm`` = ``max|λ|`` (python float); ``eigenvalue`` = the estimate of the
    largest-magnitude eigenvalue with its sign; ``n_hvp`` = Hessian-vector products used;
    ``converged`` = whether the tolerance was met before ``max_iter``.
    """

    spectral_norm: float
    eigenvalue: float
    n_hvp: int
    converged: bool


# --------------------------------------------------------------------------------------------
# parameter dict <-> flat vector
# --------------------------------------------------------------------------------------------


def _check_params(params: Mapping[str, torch.Tensor], batched: bool = False):
    if not isinstance(params, Mapping) or len(params) == 0:
        raise ValueError("params must be a non-empty dict {name: tensor}")
    tensors = list(params.values())
    for k, t in params.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"parameter {k!r} must be a floating-point tensor")
        if batched and t.dim() == 0:
            raise ValueError(f"batched parameter {k!r} needs a leading task dimension")
    dtypes = {t.dtype for t in tensors}
    devices = {t.device for t in tensors}
    if len(dtypes) != 1 or len(devices) != 1:
        raise ValueError(f"all parameters must share one dtype and device, got {dtypes} / {devices}")
    if batched:
        sizes = {t.shape[0] for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"batched parameters disagree on the number of tasks: {sorted(sizes)}")
    return tensors[0].dtype, tensors[0].device


def _flatten(d: Mapping[str, torch.Tensor], keys, batch: int | None = None) -> torch.Tensor:
    if batch is None:
        return torch.cat([d[k].reshape(-1) for k in keys])
    return torch.cat([d[k].reshape(batch, -1) for k in keys], dim=1)


def _unflatten(vec: torch.Tensor, like: Mapping[str, torch.Tensor], keys, batched: bool = False):
    out, i = {}, 0
    for k in keys:
        shape = like[k].shape[1:] if batched else like[k].shape
        n = shape.numel()
        out[k] = vec[..., i:i + n].reshape(*vec.shape[:-1], *shape) if batched else vec[i:i + n].reshape(shape)
        i += n
    return out


# --------------------------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------------------------


def _quiet(fn):
    """Run ``fn`` silencing torch's internal ``torch.jit.script`` deprecation FutureWarning, which
    forward-mode AD emits once when it loads its decompositions (not actionable by callers)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        return fn()


def _hvp_single(loss_fn, params, v, mode, *data):
    """``H v`` for one parameter dict (pure function, vmappable)."""
    g = grad(lambda p: loss_fn(p, *data))
    if mode == "forward-over-reverse":
        return jvp(g, (params,), (v,))[1]
    return vjp(g, params)[1](v)[0]  # H symmetric: vᵀH = Hv


def hessian_vector_product(loss_fn: Callable[[dict], torch.Tensor], params: Mapping[str, torch.Tensor],
                           vector: Mapping[str, torch.Tensor], mode: str = "forward-over-reverse") -> dict:
    """``H v`` where ``H = ∇²_params loss_fn(params)``; ``vector`` and the result are dicts shaped
    like ``params``.  ``mode``: ``"forward-over-reverse"`` or ``"reverse-over-reverse"``."""
    if mode not in _HVP_MODES:
        raise ValueError(f"unknown hvp mode {mode!r}; choose one of {_HVP_MODES}")
    _check_params(params)
    p = {k: t.detach() for k, t in params.items()}
    v = {k: vector[k].detach().to(t) for k, t in p.items()}
    return _quiet(lambda: _hvp_single(lambda q: loss_fn(q), p, v, mode))


def _single_matvec(loss_fn, params, keys, mode):
    """Closure ``(1, P) -> (1, P)`` computing ``H v`` on flat vectors for one task."""
    if mode == "reverse-over-reverse":
        # compute the gradient graph once and reuse it for every product
        _, vjp_fn = _quiet(lambda: vjp(grad(loss_fn), params))

        def matvec(v_flat):
            return _flatten(vjp_fn(_unflatten(v_flat[0], params, keys))[0], keys).detach()[None]
    else:
        def matvec(v_flat):
            hv = _quiet(lambda: _hvp_single(loss_fn, params, _unflatten(v_flat[0], params, keys), mode))
            return _flatten(hv, keys).detach()[None]
    return matvec


# --------------------------------------------------------------------------------------------
# eigen-solvers on a batch of flat operators: matvec (B, P) -> (B, P)
# --------------------------------------------------------------------------------------------


def _start_vector(n: int, dtype, device, seed, generator) -> torch.Tensor:
    """Deterministic random unit vector ``(n,)``: drawn in float64 on CPU, then moved/cast, so the
    same seed gives the same start on every device."""
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    v = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    return (v / v.norm()).to(device=device, dtype=dtype)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() * b.double()).sum(dim=-1)


def _power(matvec, v0: torch.Tensor, tol: float, max_iter: int):
    """Power iteration on ``B`` operators at once; returns per-task (norm, eig, n_hvp, converged)."""
    b = v0.shape[0]
    dev = v0.device
    v = v0
    est = torch.zeros(b, dtype=torch.float64, device=dev)
    sign_eig = torch.zeros_like(est)
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    out_norm, out_eig = torch.zeros_like(est), torch.zeros_like(est)
    out_iter = torch.full((b,), max_iter, dtype=torch.long, device=dev)
    prev = torch.full_like(est, float("nan"))
    for it in range(1, max_iter + 1):
        w = matvec(v)
        est = w.double().norm(dim=1)  # ‖Hv‖ ↑ max|λ|
        rq = _dot(v, w)  # Rayleigh quotient vᵀHv (carries the sign)
        sign_eig = torch.where(rq < 0, -est, est)
        newly = ~done & ((est - prev).abs() <= tol * est)
        newly |= ~done & (est == 0)  # Hv = 0: the block is zero
        out_norm = torch.where(newly, est, out_norm)
        out_eig = torch.where(newly, sign_eig, out_eig)
        out_iter = torch.where(newly, torch.full_like(out_iter, it), out_iter)
        done |= newly
        if bool(done.all()):
            break
        prev = est
        safe = est.clamp_min(torch.finfo(torch.float64).tiny).to(w.dtype)[:, None]
        v = torch.where((est > 0)[:, None], w / safe, v)
    out_norm = torch.where(done, out_norm, est)
    out_eig = torch.where(done, out_eig, sign_eig)
    return out_norm, out_eig, out_iter, done


def _orthogonalise(w: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    """Remove from ``w`` ``(B, P)`` its components along ``basis`` (list of ``(B, P)``), twice."""
    if not basis:
        return w
    q = torch.stack(basis, dim=1)  # (B, j, P)
    for _ in range(2):  # "twice is enough" (Parlett)
        w = w - torch.einsum("bj,bjp->bp", torch.einsum("bjp,bp->bj", q, w), q)
    return w


def _lanczos(matvec, v0: torch.Tensor, tol: float, max_iter: int, generator_seed: int):
    """Lanczos with full re-orthogonalisation on ``B`` operators at once."""
    b, p = v0.shape
    dev, dt = v0.device, v0.dtype
    steps = min(max_iter, p)
    gen = torch.Generator().manual_seed(generator_seed)
    q, q_prev = v0, torch.zeros_like(v0)
    beta_prev = torch.zeros(b, dtype=torch.float64, device=dev)
    basis, alphas, betas = [], [], []
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    out_norm = torch.zeros(b, dtype=torch.float64, device=dev)
    out_eig, out_iter = torch.zeros_like(out_norm), torch.full((b,), steps, dtype=torch.long, device=dev)
    norm = eig = out_norm
    for j in range(steps):
        basis.append(q)
        w = matvec(q)
        alpha = _dot(q, w)
        w = w - alpha.to(dt)[:, None] * q - beta_prev.to(dt)[:, None] * q_prev
        w = _orthogonalise(w, basis)
        beta = w.double().norm(dim=1)
        alphas.append(alpha)
        betas.append(beta)
        # Ritz values of the (j+1)×(j+1) tridiagonal matrix
        a = torch.stack(alphas, dim=1)
        off = torch.stack(betas[:-1], dim=1) if j > 0 else a[:, :0]
        t = torch.diag_embed(a) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
        theta, s = torch.linalg.eigh(t)
        idx = theta.abs().argmax(dim=1)
        top = theta.gather(1, idx[:, None])[:, 0]
        residual = beta * s[torch.arange(b, device=dev), -1, idx].abs()  # ‖H y − θ y‖
        norm, eig = top.abs(), top
        newly = ~done & (residual <= tol * norm)
        out_norm = torch.where(newly, norm, out_norm)
        out_eig = torch.where(newly, eig, out_eig)
        out_iter = torch.where(newly, torch.full_like(out_iter, j + 1), out_iter)
        done |= newly
        if bool(done.all()) or j == steps - 1:
            break
        # breakdown (invariant subspace found): restart with a fresh orthogonal vector, β = 0
        tiny = beta <= 1e-12 * norm.clamp_min(1e-300)
        if bool(tiny.any()):
            r = torch.randn(b, p, generator=gen, dtype=torch.float64).to(device=dev, dtype=dt)
            r = _orthogonalise(r, basis)
            r = r / r.double().norm(dim=1, keepdim=True).to(dt)
            beta = torch.where(tiny, torch.zeros_like(beta), beta)
            betas[-1] = beta
            w = torch.where(tiny[:, None], r, w / beta.clamp_min(1e-300).to(dt)[:, None])
        else:
            w = w / beta.to(dt)[:, None]
        q_prev, q, beta_prev = q, w, beta
    out_norm = torch.where(done, out_norm, norm)
    out_eig = torch.where(done, out_eig, eig)
    return out_norm, out_eig, out_iter, done


def _solve(matvec, v0, method, tol, max_iter, seed):
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {_METHODS}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be ≥ 1, got {max_iter}")
    if method == "power":
        return _power(matvec, v0, tol, int(max_iter))
    return _lanczos(matvec, v0, tol, int(max_iter), 1 + (0 if seed is None else int(seed)))


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def hessian_top_eigen(loss_fn: Callable[[dict], torch.Tensor], params: Mapping[str, torch.Tensor], *,
                      method: str = "power", tol: float = 1e-4, max_iter: int = 100, seed: int | None = 0,
                      generator: torch.Generator | None = None,
                      hvp_mode: str = "reverse-over-reverse") -> HessianEigen:
    """Largest-magnitude eigenvalue of ``H = ∇²_θ loss_fn(θ)`` at ``θ = params`` ([L] eq. 3).

    ``loss_fn(params_dict) -> scalar tensor`` is a pure function of the dict (e.g. a
    ``functional_call`` of a model on the support batch).  ``params``: ``{name: tensor}`` of one
    dtype/device; only these are differentiated (see the module docstring for subsets).  The start
    vector is drawn from ``generator`` or, if ``None``, from a CPU generator seeded with ``seed``.
    ``max_iter`` caps power iterations / Lanczos steps (one Hessian-vector product each).
    ``hvp_mode="reverse-over-reverse"`` (default) builds the gradient graph once and reuses it for
    every product; ``"forward-over-reverse"`` recomputes it each time with less memory.
    Returns a :class:`HessianEigen` (python numbers).
    """
    if hvp_mode not in _HVP_MODES:
        raise ValueError(f"unknown hvp_mode {hvp_mode!r}; choose one of {_HVP_MODES}")
    dtype, device = _check_params(params)
    p = {k: t.detach() for k, t in params.items()}
    keys = list(p)
    with torch.no_grad():
        value = loss_fn(p)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        raise ValueError("loss_fn must return a scalar tensor")
    if not torch.isfinite(value):
        raise ValueError(f"loss_fn returned a non-finite loss ({float(value)})")
    n = sum(t.numel() for t in p.values())
    v0 = _start_vector(n, dtype, device, seed, generator)[None]
    norm, eig, it, done = _solve(_single_matvec(loss_fn, p, keys, hvp_mode), v0, method, tol, max_iter, seed)
    return HessianEigen(float(norm[0]), float(eig[0]), int(it[0]), bool(done[0]))


def hessian_spectral_norm(loss_fn: Callable[[dict], torch.Tensor], params: Mapping[str, torch.Tensor], *,
                          method: str = "power", tol: float = 1e-4, max_iter: int = 100,
                          seed: int | None = 0, generator: torch.Generator | None = None,
                          hvp_mode: str = "reverse-over-reverse") -> float:
    """Spectral norm ``‖H‖_σ = max|λ(H)|`` of the Hessian of ``loss_fn`` at ``params`` ([L] eq. 3).

    Same arguments as :func:`hessian_top_eigen`; returns a python float.  A
    ``RuntimeWarning`` is emitted if the tolerance was not reached within ``max_iter``.
    """
    res = hessian_top_eigen(loss_fn, params, method=method, tol=tol, max_iter=max_iter, seed=seed,
                            generator=generator, hvp_mode=hvp_mode)
    if not res.converged:
        warnings.warn(f"{method} iteration did not reach tol={tol} in {max_iter} steps", RuntimeWarning,
                      stacklevel=2)
    return res.spectral_norm


def hessian_spectral_norm_batched(loss_fn: Callable[..., torch.Tensor], params_batched: Mapping[str, torch.Tensor],
                                  *data_batched: torch.Tensor, method: str = "power", tol: float = 1e-4,
                                  max_iter: int = 100, seed: int | None = 0,
                                  generator: torch.Generator | None = None,
                                  return_info: bool = False):
    """Spectral norms of ``T`` per-task Hessians at once, vectorised with ``torch.func.vmap``.

    ``loss_fn(params, *data) -> scalar`` for *one* task; ``params_batched`` ``{name: (T, ...)}``
    holds each task's parameters (e.g. the adapted ``θ̃_i``) and every tensor in ``data_batched``
    has a leading task dimension ``T`` (e.g. support images ``(T, N, C, H, W)``, labels ``(T, N)``);
    data shared by all tasks can be closed over by ``loss_fn``.  The solver runs on all tasks
    together; each task's value is frozen at the iteration where it meets ``tol`` (so it equals
    :func:`hessian_spectral_norm` for that task, up to rounding) and the loop stops when all have.
    Every task starts from the same random vector (``seed``/``generator``), as the per-task call.

    Hessian-vector products are forward-over-reverse (``vmap(jvp(grad))``): double backward
    through convolution/batch-norm is not supported under ``vmap``.  The first forward-mode call in
    a process pays a one-off start-up of a few seconds (torch loads its forward-AD decompositions).

    Returns a float64 tensor ``(T,)`` of ``max|λ|`` on the parameters' device; with
    ``return_info=True`` a tuple ``(norms, eigenvalues, n_hvp, converged)`` of ``(T,)`` tensors.
    """
    hvp_mode = "forward-over-reverse"
    dtype, device = _check_params(params_batched, batched=True)
    p = {k: t.detach() for k, t in params_batched.items()}
    keys = list(p)
    n_tasks = next(iter(p.values())).shape[0]
    for i, d in enumerate(data_batched):
        if not isinstance(d, torch.Tensor) or d.dim() == 0 or d.shape[0] != n_tasks:
            raise ValueError(f"data_batched[{i}] must be a tensor with leading task dimension {n_tasks}")
    with torch.no_grad():
        values = vmap(loss_fn)(p, *data_batched)
    if values.shape != (n_tasks,):
        raise ValueError(f"loss_fn must return a scalar per task, got batched shape {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError("loss_fn returned non-finite losses")
    hvp = vmap(lambda q, v, *d: _hvp_single(loss_fn, q, v, hvp_mode, *d))

    def matvec(v_flat):
        hv = _quiet(lambda: hvp(p, _unflatten(v_flat, p, keys, batched=True), *data_batched))
        return _flatten(hv, keys, batch=n_tasks).detach()

    n = sum(t[0].numel() for t in p.values())
    v0 = _start_vector(n, dtype, device, seed, generator)[None].expand(n_tasks, n).contiguous()
    norm, eig, it, done = _solve(matvec, v0, method, tol, max_iter, seed)
    if not bool(done.all()):
        warnings.warn(f"{int((~done).sum())} of {n_tasks} tasks did not reach tol={tol} in {max_iter} steps",
                      RuntimeWarning, stacklevel=2)
    if return_info:
        return norm, eig, it, done
    return norm
