"""Negative controls shared by the chapters: nulls measured by the same code as the
claim.

:func:`matched_perturbation` is the null for claims about *which layers* an update
changes ([G] Figs 1–3, [R]'s feature reuse): θ moved in a random direction by exactly as
much, tensor by tensor, as the real update moved it. It keeps the per-layer sizes of the
update (and so whatever the architecture does with a change of that size) and throws
away its direction. A claim about what the update does to the layers must beat it."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

__all__ = ["matched_perturbation"]


def _as_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded with ``seed`` (a generator is returned as
    is)."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(int(seed))


def _perturb(t: torch.Tensor, a: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if t.shape != a.shape:
        raise ValueError(f"θ and the updated θ differ in shape: {tuple(t.shape)} vs "
                         f"{tuple(a.shape)}.")
    if not t.is_floating_point():  # counters, integer buffers: not moved
        return t.clone()
    delta = (a.detach().to(t.device, torch.float64) - t.detach().to(torch.float64))
    norm = torch.linalg.vector_norm(delta)
    # drawn on the CPU in float64, so the same seed gives the same direction on every
    # device
    r = torch.randn(t.shape, generator=gen, dtype=torch.float64)
    r_norm = torch.linalg.vector_norm(r)
    if norm == 0 or r_norm == 0:
        return t.detach().clone()
    step = (r * (norm.cpu() / r_norm)).to(t.device)
    return (t.detach().to(torch.float64) + step).to(t.dtype)


def matched_perturbation(theta, adapted, generator: int | torch.Generator):
    """θ moved at random by the same distance as ``adapted`` is from θ, tensor by
    tensor.

    ``theta`` and ``adapted``: tensors, or dicts / lists / tuples of them (nested), of
    the same structure and shapes. For every floating tensor, ``θ + ‖Δ‖ · r / ‖r‖`` with
    ``Δ = adapted − θ`` and ``r`` a standard normal draw of the tensor's shape, so
    ``‖result − θ‖ = ‖Δ‖`` per tensor while the direction is uniformly random; a tensor
    that did not move (‖Δ‖ = 0, e.g. a buffer) and a non-floating tensor stay as in θ.
    ``generator``: a seed or a CPU :class:`torch.Generator` (draws are made in float64
    on the CPU in the structure's order, then moved to each tensor's device and dtype).
    Returns the same structure, detached."""
    return _walk(theta, adapted, _as_generator(generator))


def _walk(theta, adapted, gen):
    if isinstance(theta, torch.Tensor):
        if not isinstance(adapted, torch.Tensor):
            raise TypeError("θ is a tensor but the updated θ is not.")
        return _perturb(theta, adapted, gen)
    if isinstance(theta, Mapping):
        if set(theta) != set(adapted):
            odd = sorted(set(theta) ^ set(adapted))
            raise ValueError(f"θ and the updated θ have different keys: {odd}.")
        pairs = [(k, _walk(theta[k], adapted[k], gen)) for k in theta]
        return type(theta)(pairs) if isinstance(theta, dict) else dict(pairs)
    if isinstance(theta, Sequence) and not isinstance(theta, str):
        if len(theta) != len(adapted):
            raise ValueError(f"θ has {len(theta)} tensors, the updated θ "
                             f"{len(adapted)}.")
        out = [_walk(t, a, gen) for t, a in zip(theta, adapted)]
        return tuple(out) if isinstance(theta, tuple) else out
    raise TypeError("matched_perturbation takes tensors, dicts or lists of them; got "
                    f"{type(theta).__name__}.")
