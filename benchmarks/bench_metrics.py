"""Timing of the analysis metrics at realistic sizes (a script, not a test).

    PYTHONPATH=lib python benchmarks/bench_metrics.py [--device cpu|cuda] [--threads N] [--repeats R]

Sizes: 600 inputs with 64×7×7 = 3136 features per representation (a Conv4 layer on 600
meta-test images); RSA's RDM of RDMs over 20 representations; the Hessian of a Conv4 with 32
filters (Omniglot 28×28, 5-way, 5 support examples) at an adapted point.  For RSA the same inputs
go through rsatoolbox, the values are asserted equal and the speed ratio is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from mamlscope.metrics import (
    compare_rdms,
    gradient_coherence,
    hessian_spectral_norm_batched,
    hessian_top_eigen,
    linear_cka,
    linear_cka_features,
    mds_embedding,
    pwcca,
    rbf_cka,
    rdm,
    rdm_of_rdms,
    representation_coherence,
    svcca,
    trajectory_coherence,
    upper_triangle,
)


def timeit(fn, repeats):
    """Best wall time over ``repeats`` runs (after one warm-up run) and the last result.

    Sleeps briefly first: BLAS/OpenMP worker threads of the previous measurement keep spinning for
    a while and would otherwise be charged to this one on a machine with few cores.
    """
    time.sleep(0.3)
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def row(name, seconds, extra=""):
    print(f"  {name:<44s} {seconds * 1e3:10.1f} ms  {extra}")


def representations(m, n, d, device, seed=0):
    """``m`` related, low-rank-plus-noise ReLU representations ``(n, d)`` (float32)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 48, generator=g)
    w = torch.randn(48, d, generator=g) / 48**0.5
    base = z @ w
    reps = []
    for i in range(m):
        drift = torch.randn(48, d, generator=g) / 48**0.5
        reps.append(F.relu(base + 0.15 * i * (z @ drift) + 0.1 * torch.randn(n, d, generator=g)))
    return [r.to(device) for r in reps]


def bench_rsa(acts, repeats):
    import rsatoolbox

    print(f"RSA: {len(acts)} representations of {acts[0].shape[0]} inputs × {acts[0].shape[1]} features")
    np_acts = [a.cpu().numpy() for a in acts]

    t_rdm, r0 = timeit(lambda: rdm(acts[0]), repeats)
    t_rt_rdm, rt0 = timeit(lambda: rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(np_acts[0]), method="euclidean"),
                           repeats)
    np.testing.assert_allclose(upper_triangle(r0).cpu().numpy() ** 2 / acts[0].shape[1], rt0.get_vectors()[0],
                               rtol=1e-4, atol=1e-6)  # rsatoolbox: squared distance / d, float32 inputs
    row("rdm (one representation)", t_rdm, f"rsatoolbox calc_rdm {t_rt_rdm * 1e3:.1f} ms, "
        f"ratio {t_rt_rdm / t_rdm:.1f}x")

    rdms = torch.stack([rdm(a) for a in acts])
    t_cmp, v = timeit(lambda: compare_rdms(rdms[0], rdms[1]), repeats)
    rt_pair = rsatoolbox.rdm.RDMs(np.stack([upper_triangle(r).cpu().numpy() for r in rdms[:2]]))
    t_rt_cmp, rt_v = timeit(lambda: rsatoolbox.rdm.compare(rt_pair[0], rt_pair[1], method="spearman"), repeats)
    assert abs(v - (1 - rt_v[0, 0])) < 1e-6
    row("compare_rdms (one pair, given RDMs)", t_cmp, f"rsatoolbox compare {t_rt_cmp * 1e3:.1f} ms, "
        f"ratio {t_rt_cmp / t_cmp:.1f}x")

    vecs = np.stack([upper_triangle(r).cpu().numpy() for r in rdms])
    rt_rdms = rsatoolbox.rdm.RDMs(vecs)
    t_ror, ror = timeit(lambda: rdm_of_rdms(rdms), repeats)
    t_rt_ror, rt_sim = timeit(lambda: rsatoolbox.rdm.compare(rt_rdms, rt_rdms, method="spearman"), repeats)
    err = np.abs(ror.cpu().numpy() - (1 - rt_sim)).max()
    assert err < 1e-6, err
    row(f"rdm_of_rdms ({len(acts)} given RDMs)", t_ror, f"rsatoolbox compare {t_rt_ror * 1e3:.1f} ms, "
        f"ratio {t_rt_ror / t_ror:.1f}x, max|diff| {err:.1e}")

    def ours_end_to_end():
        return rdm_of_rdms([rdm(a) for a in acts])

    def rt_end_to_end():
        rts = rsatoolbox.rdm.calc_rdm([rsatoolbox.data.Dataset(a) for a in np_acts], method="euclidean")
        return rsatoolbox.rdm.compare(rts, rts, method="spearman")

    t_e2e, e2e = timeit(ours_end_to_end, max(1, repeats // 2))
    t_rt_e2e, rt_e2e = timeit(rt_end_to_end, max(1, repeats // 2))
    err = np.abs(e2e.cpu().numpy() - (1 - rt_e2e)).max()
    assert err < 1e-5, err  # rsatoolbox computes float32 inputs in float32
    row(f"activations -> RDM of RDMs ({len(acts)} reps)", t_e2e,
        f"rsatoolbox {t_rt_e2e * 1e3:.1f} ms, ratio {t_rt_e2e / t_e2e:.1f}x, max|diff| {err:.1e}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t_mds, _ = timeit(lambda: mds_embedding(ror, 2, seed=0), 1)
    row(f"mds_embedding ({len(acts)}×{len(acts)})", t_mds)
    return t_rt_ror / t_ror, t_rt_e2e / t_e2e


def bench_similarity(acts, repeats):
    x, y = acts[0], acts[5]
    print(f"CKA / CCA: two representations {tuple(x.shape)}")
    for name, fn in [
        ("linear_cka", lambda: linear_cka(x, y)),
        ("linear_cka(debiased=True)", lambda: linear_cka(x, y, debiased=True)),
        ("linear_cka_features", lambda: linear_cka_features(x, y)),
        ("rbf_cka(sigma_frac=0.5)", lambda: rbf_cka(x, y)),
        ("svcca(keep_variance=0.99)", lambda: svcca(x, y)),
        ("pwcca(keep_variance=0.99)", lambda: pwcca(x, y, keep_variance=0.99)),
    ]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, v = timeit(fn, repeats)
        note = f" [warned: {str(caught[0].message)[:90]}...]" if caught else ""
        row(name, t, f"value {v:.4f}{note}")


def bench_coherence(device, repeats, n_params):
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(n_params, generator=g)
    deltas = (0.5 * shared + torch.randn(100, n_params, generator=g)).to(device)
    h = torch.randn(600, 128, generator=g).relu().to(device)
    print(f"Coherence: 100 tasks × {n_params} parameters; 600 representations × 128")
    for name, fn in [("trajectory_coherence", lambda: trajectory_coherence(deltas)),
                     ("gradient_coherence", lambda: gradient_coherence(deltas)),
                     ("representation_coherence", lambda: representation_coherence(h))]:
        t, v = timeit(fn, repeats)
        row(name, t, f"mean {v.mean:.4f} ± {v.se:.4f}")


class LocalConv4(nn.Module):
    """4 × [3×3 conv (32 filters, stride 2, padding 1), BatchNorm2d(batch stats), ReLU] → linear."""

    def __init__(self, n_way=5, filters=32):
        super().__init__()
        layers, c = [], 1
        for _ in range(4):
            layers += [nn.Conv2d(c, filters, 3, stride=2, padding=1),
                       nn.BatchNorm2d(filters, track_running_stats=False), nn.ReLU()]
            c = filters
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(filters * 2 * 2, n_way)

    def forward(self, x):
        return self.head(self.features(x))


def conv4(device):
    try:  # the project's model, if present with the expected signature
        from mamlscope.core.models import Conv4

        model, source = Conv4(n_way=5, filters=32, in_channels=1, image_size=28, pooling="stride"), "mamlscope.core.models.Conv4"
    except (ImportError, TypeError):
        model, source = LocalConv4(), "LocalConv4 (defined in this script)"
    return model.to(device), source


def bench_hessian(device, repeats):
    torch.manual_seed(0)
    model, source = conv4(device)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    n_params = sum(v.numel() for v in theta.values())
    print(f"Hessian: {source}, {n_params} parameters, 5-way 1-shot support (5 × 1×28×28), float32")
    g = torch.Generator().manual_seed(2)
    tasks = [(torch.randn(5, 1, 28, 28, generator=g).to(device), torch.arange(5, device=device)) for _ in range(4)]

    def loss(p, x, y):
        return F.cross_entropy(functional_call(model, p, (x,)), y)

    def adapt(x, y, steps=3, lr=0.4):
        p = dict(theta)
        for _ in range(steps):
            leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
            grads = torch.autograd.grad(loss(leaves, x, y), list(leaves.values()))
            p = {k: (v - lr * gr).detach() for (k, v), gr in zip(leaves.items(), grads)}
        return p

    adapted = [adapt(x, y) for x, y in tasks]
    x0, y0 = tasks[0]
    results = {}
    for method in ("power", "lanczos"):
        for mode in ("reverse-over-reverse", "forward-over-reverse"):
            t, res = timeit(lambda: hessian_top_eigen(lambda p: loss(p, x0, y0), adapted[0], method=method,
                                                      hvp_mode=mode), repeats)
            results[method] = res.spectral_norm
            row(f"hessian_spectral_norm {method}, {mode}", t,
                f"‖H‖σ {res.spectral_norm:.5f} (λ {res.eigenvalue:+.5f}), {res.n_hvp} HVPs, "
                f"converged={res.converged}")
    assert abs(results["power"] - results["lanczos"]) <= 1e-3 * results["lanczos"], results
    head = {k: v for k, v in adapted[0].items() if k.startswith("head")}
    body = {k: v for k, v in adapted[0].items() if not k.startswith("head")}
    t, res = timeit(lambda: hessian_top_eigen(lambda p: loss({**body, **p}, x0, y0), head, method="lanczos"), repeats)
    row("hessian_spectral_norm lanczos, head block only", t, f"‖H_head‖σ {res.spectral_norm:.5f}")

    pb = {k: torch.stack([p[k] for p in adapted]) for k in theta}
    xb = torch.stack([x for x, _ in tasks])
    yb = torch.stack([y for _, y in tasks])
    for method in ("power", "lanczos"):
        t_loop, loop = timeit(lambda: [hessian_top_eigen(lambda p, x=x, y=y: loss(p, x, y), p, method=method)
                                       .spectral_norm for (x, y), p in zip(tasks, adapted)], repeats)
        t_b, batched = timeit(lambda: hessian_spectral_norm_batched(loss, pb, xb, yb, method=method), repeats)
        err = (batched.cpu() - torch.tensor(loop, dtype=torch.float64)).abs().max().item()
        row(f"{len(tasks)} tasks, {method}: per-task loop", t_loop, "values " + ", ".join(f"{v:.4f}" for v in loop))
        row(f"{len(tasks)} tasks, {method}: hessian_spectral_norm_batched", t_b,
            f"max|diff| vs loop {err:.1e}, ratio {t_loop / t_b:.2f}x")
    return n_params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-reps", type=int, default=20, help="representations in the RDM of RDMs")
    ap.add_argument("--sections", default="rsa,similarity,hessian,coherence",
                    help="comma-separated subset of rsa, similarity, hessian, coherence")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    sections = set(args.sections.split(","))
    unknown = sections - {"rsa", "similarity", "hessian", "coherence"}
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")
    acts = representations(args.n_reps, 600, 64 * 7 * 7, args.device) if sections & {"rsa", "similarity"} else None
    ratios = bench_rsa(acts, args.repeats) if "rsa" in sections else None
    if "similarity" in sections:
        bench_similarity(acts, args.repeats)
    n_params = bench_hessian(args.device, args.repeats) if "hessian" in sections else 28965
    if "coherence" in sections:
        bench_coherence(args.device, args.repeats, n_params)
    if ratios:
        goal = "met" if ratios[0] >= 10 else "NOT met"
        print(f"RSA speed-up vs rsatoolbox: RDM of RDMs {ratios[0]:.1f}x (goal ≥ 10x: {goal}); "
              f"end to end from activations {ratios[1]:.1f}x")
    print(f"load average at the end {os.getloadavg()[0]:.2f} (timings are unreliable when it exceeds the CPU count)")


if __name__ == "__main__":
    main()
