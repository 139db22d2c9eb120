"""Outer loops: MAML, first-order MAML, ANIL; and the supervised baseline.

MAML ([F] Alg. 2): for a meta-batch of tasks 𝒯₁…𝒯_B, adapt θ on each support set
(:mod:`mamlscope.core.inner`), then take an Adam step on the mean query loss

    θ ← Adam(θ, ∇_θ (1/B) Σ_b L_Q,b(θ_K,b(θ))).

First-order MAML drops the second-order terms; ANIL ([R]) adapts only the head in the inner
loop, at training and at test time. The supervised baseline trains the same Conv4 on ordinary
mini-batches of one big classification problem (MNIST, or all Omniglot training characters).

Training is a pure function of the configuration: the tasks of step ``s`` are tasks
``s·B … s·B+B−1`` of a seeded sampler, the initial weights come from ``seed``. A run is cached
under the hash of its configuration (:mod:`mamlscope.core.runs`), checkpointed, and resumable.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mamlscope.core import data
from mamlscope.core.evaluate import per_task_scores, store_task_scores
from mamlscope.core.inner import InnerLoop, query_loss
from mamlscope.core.models import VARIANTS, build_model
from mamlscope.core.runs import ADDED, Run
from mamlscope.progress import progress_bar

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def added(default):
    """A configuration field added after runs were cached: it enters a run's hash only when it
    differs from ``default`` (:mod:`mamlscope.core.runs`), so cached runs keep their directories."""
    return field(default=default, metadata={ADDED: True})


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; use one of {sorted(DTYPES)}.")


def _build_in(dtype: str, arch: str, **kwargs):
    """``build_model(arch, **kwargs)`` with parameters created *and initialised* in ``dtype``
    (a float32 init cast to float64 would carry the float32 kernels' last-bit differences)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(DTYPES[dtype])
    try:
        return build_model(arch, **kwargs)
    finally:
        torch.set_default_dtype(old)

ALGORITHMS = {  # name → (which parameters adapt, first order?)
    "maml": ("all", False),
    "fomaml": ("all", True),
    "anil": ("head", False),
}


def log_spaced_steps(last: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, … up to ``last``: checkpoints for log-axis plots of training."""
    out, decade = [], 1
    while decade <= last:
        out += [m * decade for m in (1, 2, 5) if m * decade <= last]
        decade *= 10
    return out


def checkpoint_steps(last: int, every: int, log_spaced: bool) -> list[int]:
    """0, every multiple of ``every``, ``last``, and (if ``log_spaced``) 1, 2, 5, 10, …"""
    steps = set(range(0, last + 1, every)) | {0, last}
    if log_spaced:
        steps |= set(log_spaced_steps(last))
    return sorted(steps)


@dataclass(frozen=True)
class MetaConfig:
    """Everything that determines a meta-training run (its hash keys the run directory).

    ``inner_steps``/``inner_lr`` are the training inner loop; ``eval_inner_steps`` is used at
    meta-test time (same ``inner_lr``). ``q_query`` queries per class at training and testing.
    ``curve_tasks`` fixed test tasks are scored at every checkpoint for the learning curve.
    Sinusoid runs use ``amplitude``/``phase`` for meta-training and ``test_amplitude``/
    ``test_phase`` for meta-testing ([L] §5.3.1 makes them disjoint). ``dtype`` is the floating
    point type of weights and inputs (the ``smoke`` profile trains in float64 so that what the
    regression tests print does not depend on the CPU's vector kernels). ``inner_reduction``
    reduces the inner loop's support loss (``"mean"``, or Finn et al.'s ``"sum/k"``: N times the
    step at the same α, see :mod:`mamlscope.core.inner`); ``network`` is the Conv4 variant (``"book"``
    or Finn et al.'s ``"finn"``, see :class:`mamlscope.core.models.Conv4`).
    """

    algorithm: str = "maml"
    dataset: str = "omniglot"
    n_way: int = 5
    k_shot: int = 1
    q_query: int = 5
    filters: int = 32
    inner_steps: int = 1
    inner_lr: float = 0.4
    eval_inner_steps: int = 3
    meta_batch: int = 8
    meta_lr: float = 1e-3
    steps: int = 5000
    checkpoint_every: int = 500
    log_checkpoints: bool = True
    log_every: int = 50
    curve_tasks: int = 100
    seed: int = 0
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    test_amplitude: tuple[float, float] = (0.1, 5.0)
    test_phase: tuple[float, float] = (0.0, math.pi)
    dtype: str = added("float32")
    inner_reduction: str = added("mean")
    network: str = added("book")
    train_characters: int = added(0)     # meta-train on this many Omniglot characters (0: all 1,200)
    rotate: bool = added(True)           # meta-train tasks rotate each class by k·90° (Finn et al.)
    coherence_penalty: float = added(0.0)  # γ of [L] Algorithm 1 (inner.coherence_correction); 0: off
    arch: str = added("conv4")           # "conv4", or Agarwal's fully-connected "fc" (models.FCNet)

    def __post_init__(self):
        _check_dtype(self.dtype)
        InnerLoop(reduction=self.inner_reduction)  # validates it
        if self.network not in VARIANTS:
            raise ValueError(f"network={self.network!r}; use one of {list(VARIANTS)} (Finn et al.'s Conv4).")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm={self.algorithm!r}; use one of {sorted(ALGORITHMS)}.")
        if self.dataset not in ("omniglot", "mnist", "sinusoid"):
            raise ValueError(f"dataset={self.dataset!r}; meta-training supports 'omniglot', 'mnist' and 'sinusoid'.")
        if self.arch not in ("conv4", "fc"):
            raise ValueError(f"arch={self.arch!r}; use 'conv4' or 'fc' (sinusoids always use the MLP).")
        if self.coherence_penalty < 0:
            raise ValueError(f"coherence_penalty={self.coherence_penalty} must be >= 0 (0 switches it off).")
        if self.coherence_penalty and self.meta_batch < 2:
            raise ValueError("coherence_penalty needs meta_batch >= 2: it aligns each task's update with the batch's mean.")
        for name in ("steps", "meta_batch", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")

    @property
    def name(self) -> str:
        shape = "sin" if self.dataset == "sinusoid" else f"{self.n_way}w{self.k_shot}s"
        reg = "-reg" if self.coherence_penalty else ""
        fc = "-fc" if self.arch == "fc" else ""
        return f"{self.algorithm}{reg}{fc}-{self.dataset}-{shape}"

    @property
    def loss(self) -> str:
        return "mse" if self.dataset == "sinusoid" else "cross_entropy"

    def inner(self, train: bool = True) -> InnerLoop:
        adapt, first_order = ALGORITHMS[self.algorithm]
        steps = self.inner_steps if train else self.eval_inner_steps
        return InnerLoop(steps, self.inner_lr, adapt, first_order, self.inner_reduction)

    def build_model(self):
        if self.dataset == "sinusoid":
            return _build_in(self.dtype, "mlp")
        if self.arch == "fc":
            return _build_in(self.dtype, "fc", n_way=self.n_way)
        return _build_in(self.dtype, "conv4", n_way=self.n_way, filters=self.filters, variant=self.network)

    def train_tasks(self):
        if self.dataset == "sinusoid":
            return data.SinusoidTasks(self.k_shot, self.q_query, tuple(self.amplitude), tuple(self.phase), seed=self.seed)
        if self.dataset == "mnist":
            return data.mnist_tasks("train", self.n_way, self.k_shot, self.q_query, seed=self.seed)
        return data.omniglot_tasks("train", self.n_way, self.k_shot, self.q_query, seed=self.seed,
                                   n_characters=self.train_characters, rotate=self.rotate)

    def test_tasks(self, n_tasks: int):
        extra = {}
        if self.dataset == "sinusoid":
            extra = {"amplitude": tuple(self.test_amplitude), "phase": tuple(self.test_phase)}
        return data.fixed_test_tasks(self.dataset, self.n_way, self.k_shot, self.q_query, n_tasks, **extra)

    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.steps, self.checkpoint_every, self.log_checkpoints)


@dataclass(frozen=True)
class SupervisedConfig:
    """Plain supervised training of the Conv4 on ``dataset`` (``"mnist"``: 10 classes;
    ``"omniglot"``: the 1,200 training characters as classes, or the first ``characters`` of them,
    :func:`mamlscope.core.data.omniglot_subset`), Adam, cross-entropy."""

    dataset: str = "mnist"
    filters: int = 32
    batch_size: int = 100
    lr: float = 1e-3
    steps: int = 200
    checkpoint_every: int = 10
    log_checkpoints: bool = True
    log_every: int = 10
    seed: int = 0
    dtype: str = added("float32")
    characters: int = added(0)           # Omniglot: train on this many characters (0: all 1,200)
    arch: str = added("conv4")           # "conv4", or Agarwal's fully-connected "fc" (models.FCNet)
    weight_decay: float = added(0.0)     # L2 strength, added to the gradient by Adam (Agarwal: 0.01)
    sampling: str = added("replacement")  # mini-batches drawn with replacement, or "epochs" (shuffled passes)

    def __post_init__(self):
        _check_dtype(self.dtype)
        if self.characters and self.dataset != "omniglot":
            raise ValueError(f"characters={self.characters} only applies to dataset='omniglot'.")
        if self.dataset not in ("mnist", "omniglot"):
            raise ValueError(f"dataset={self.dataset!r}; use 'mnist' or 'omniglot'.")
        if self.arch not in ("conv4", "fc"):
            raise ValueError(f"arch={self.arch!r}; use 'conv4' or 'fc'.")
        if self.sampling not in ("replacement", "epochs"):
            raise ValueError(f"sampling={self.sampling!r}; use 'replacement' or 'epochs'.")

    @property
    def name(self) -> str:
        return f"supervised{'-fc' if self.arch == 'fc' else ''}-{self.dataset}"

    def load(self, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``uint8 (n, 28, 28)`` and labels."""
        if self.dataset == "mnist":
            return data.load_mnist(train)
        images = data.load_omniglot()[data.omniglot_subset("train", self.characters)]  # (1200, 20, 28, 28)
        n_cls, n_per = images.shape[:2]
        idx = torch.arange(n_per)
        keep = idx < 15 if train else idx >= 15  # 15 drawings per character to train, 5 held out
        x = images[:, keep].reshape(-1, *images.shape[2:])
        y = torch.arange(n_cls).repeat_interleave(int(keep.sum()))
        return x, y

    @property
    def n_classes(self) -> int:
        return 10 if self.dataset == "mnist" else (self.characters or data.N_OMNIGLOT_TRAIN)

    def build_model(self):
        if self.arch == "fc":
            return _build_in(self.dtype, "fc", n_way=self.n_classes)
        return _build_in(self.dtype, "conv4", n_way=self.n_classes, filters=self.filters)

    def batch_indices(self, step: int, n: int) -> torch.Tensor:
        """The training examples of ``step`` among ``n``: drawn with replacement (seeded by the
        step), or the step's slice of a shuffled pass over the data (seeded by the epoch; the
        last batch of an epoch is the remainder)."""
        if self.sampling == "replacement":
            return torch.randint(n, (self.batch_size,), generator=data.task_generator(self.seed, step))
        per_epoch = math.ceil(n / self.batch_size)
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(n, generator=data.task_generator(self.seed, -1 - epoch))
        return order[i * self.batch_size:(i + 1) * self.batch_size]

    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.steps, self.checkpoint_every, self.log_checkpoints)


# --------------------------------------------------------------------------------------------
def init_model(config, device="cpu"):
    """``config``'s model with its seeded initial weights (the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return config.build_model().to(device)


def _resume(run: Run, model, opt) -> int:
    """Load the newest checkpoint into ``model``/``opt``; return its step (0 if none)."""
    if not run.checkpoint_steps():
        return 0
    state = run.load_checkpoint()
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    run.truncate_metrics(state["step"])
    return state["step"]


def _save(run: Run, step: int, model, opt) -> None:
    run.save_checkpoint(step, {"model": model.state_dict(), "optimizer": opt.state_dict()})


@dataclass(frozen=True)
class Attempt:
    """What one call of :func:`attempt` did: trained ``run`` from ``start`` to its end
    (``trained`` steps, ``seconds`` of wall time), or nothing (``trained == 0``) because the run
    was finished, possibly by another process while this one waited for its lock."""
    run: Run
    start: int
    trained: int
    seconds: float


def train(config, *, device="cpu", backend: str = "func", progress: bool | None = None, root=None) -> Run:
    """Train (or resume, or reuse) the run of ``config``; returns its :class:`~mamlscope.core.runs.Run`.

    ``device`` and ``backend`` do not enter the run's hash: they change speed, not the result
    (up to floating-point noise; so does the number of threads, which ``final.json`` records).
    """
    return attempt(config, device=device, backend=backend, progress=progress, root=root).run


def attempt(config, *, device="cpu", backend: str = "func", progress: bool | None = None, root=None,
            on_step=None, until: int | None = None) -> Attempt:
    """:func:`train`, saying what it did. The run's lock is held while training, so a second
    process asking for the same run waits, then finds it finished. ``on_step(done, total)`` is
    called after every step (progress reports). ``until``: stop at that step, a checkpoint
    (a chunk of a long run; the run stays unfinished and resumes from there)."""
    if not isinstance(config, (MetaConfig, SupervisedConfig)):
        raise TypeError(f"cannot train a {type(config).__name__}; use MetaConfig or SupervisedConfig.")
    if until is not None and (not isinstance(config, MetaConfig) or until not in config.checkpoint_steps()):
        raise ValueError(f"until={until}: a chunk must end at one of the meta-training run's checkpoints "
                         f"(every {getattr(config, 'checkpoint_every', '?')} steps).")
    run = Run(config, root)
    if run.finished:
        return Attempt(run, config.steps, 0, 0.0)
    with run.lock():
        if run.finished:  # trained by the process we waited for
            return Attempt(run, config.steps, 0, 0.0)
        t0 = time.perf_counter()
        on_step = on_step or (lambda done, total: None)
        if isinstance(config, MetaConfig):
            start = _train_meta(run, config, torch.device(device), backend, progress, on_step, until)
        else:
            start = _train_supervised(run, config, torch.device(device), backend, progress, on_step)
    end = config.steps if until is None else max(until, start)
    return Attempt(run, start, end - start, time.perf_counter() - t0)


def _meta_step(model, opt, tasks, step: int, cfg: MetaConfig, inner, backend, device):
    """One Adam step on the mean query loss of meta-batch ``step``; returns its per-task
    (losses, scores), detached."""
    B = cfg.meta_batch
    batch = tasks.batch(range(step * B, (step + 1) * B)).to(device, DTYPES[cfg.dtype])
    losses, scores = query_loss(model, batch, inner, loss=cfg.loss, backend=backend,
                                coherence_gamma=cfg.coherence_penalty)
    opt.zero_grad(set_to_none=True)
    losses.mean().backward()
    opt.step()
    return losses.detach(), scores.detach()


def _supervised_step(model, opt, x, y, step: int, cfg: SupervisedConfig, device):
    """One Adam step on mini-batch ``step``; returns (indices, logits, loss)."""
    idx = cfg.batch_indices(step, len(x))
    xb = (x[idx].float() / 255.0).unsqueeze(1).to(device, DTYPES[cfg.dtype])
    out = model(xb)
    loss = F.cross_entropy(out, y[idx].to(device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return idx, out, loss


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate` timed: the whole run's seconds, each timed step's seconds, and the
    spread of those (slowest ÷ fastest; well above 1 when something else competes for the
    machine, so the estimate is then too high)."""
    seconds: float
    step_seconds: tuple
    eval_seconds: float

    @property
    def spread(self) -> float:
        return max(self.step_seconds) / min(self.step_seconds)


def _synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def estimate(config, *, device="cpu", backend: str = "func", steps: int = 3) -> Estimate:
    """The wall time a run of ``config`` would take here, from timing ``steps`` training steps
    one by one (after one warm-up step) and, for meta-learning, the checkpoints' test-task
    evaluations:

        T ≈ config.steps · median(t_step) + (#checkpoints) · curve_tasks · t_task.

    Nothing is written. On CUDA each timing waits for the device (``torch.cuda.synchronize``)."""
    device = torch.device(device)
    model = init_model(config, device)
    if isinstance(config, MetaConfig):
        opt = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
        tasks, inner = config.train_tasks(), config.inner(train=True)
        run_step = lambda s: _meta_step(model, opt, tasks, s, config, inner, backend, device)  # noqa: E731
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        x, y = config.load(train=True)
        run_step = lambda s: _supervised_step(model, opt, x, y, s, config, device)  # noqa: E731
    run_step(0)
    _synchronize(device)
    times = []
    for s in range(1, steps + 1):
        t0 = time.perf_counter()
        run_step(s)
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    seconds = config.steps * statistics.median(times)
    evaluation = 0.0
    if isinstance(config, MetaConfig) and config.curve_tasks:
        n = min(config.curve_tasks, 4)
        test = config.test_tasks(n)
        t0 = time.perf_counter()
        per_task_scores(model, test, config.inner(train=False), loss=config.loss)
        _synchronize(device)
        per_task = (time.perf_counter() - t0) / n
        evaluation = len(config.checkpoint_steps()) * config.curve_tasks * per_task
    return Estimate(seconds + evaluation, tuple(times), evaluation)


def estimate_seconds(config, *, device="cpu", backend: str = "func", steps: int = 2) -> float:
    """:func:`estimate`'s seconds: orders the runs for scheduling (longest first)."""
    return estimate(config, device=device, backend=backend, steps=steps).seconds


def _provenance(device) -> dict:
    """How the run was computed, beside what (its config): results depend on the thread count."""
    return {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}


def _train_meta(run: Run, cfg: MetaConfig, device, backend, progress, on_step, until=None) -> int:
    model = init_model(cfg, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)
    start = _resume(run, model, opt)
    tasks, curve = cfg.train_tasks(), cfg.test_tasks(cfg.curve_tasks)
    ckpts = set(cfg.checkpoint_steps())
    inner, eval_inner = cfg.inner(train=True), cfg.inner(train=False)

    def checkpoint(step):
        scores = per_task_scores(model, curve, eval_inner, loss=cfg.loss)
        s = store_task_scores(run, step, eval_inner, scores)  # later analyses read them (run_task_scores)
        run.log({"step": step, "test_score": s["mean"], "test_ci95": s["ci95"], "test_tasks": s["n"]})
        _save(run, step, model, opt)

    if start == 0:
        checkpoint(0)
    sums, count, t0 = torch.zeros(2), 0, time.perf_counter()
    end = cfg.steps if until is None else until
    for step in progress_bar(range(start, end), enable=progress, desc=run.dir.name,
                             initial=start, total=end):
        losses, scores = _meta_step(model, opt, tasks, step, cfg, inner, backend, device)
        sums += torch.stack([losses.mean(), scores.mean()]).cpu()
        count += 1
        done = step + 1
        if done % cfg.log_every == 0 or done in ckpts:  # a log window never spans a checkpoint,
            run.log({"step": done, "train_loss": sums[0].item() / count,  # so resuming logs the same
                     "train_score": sums[1].item() / count,
                     "seconds_per_step": (time.perf_counter() - t0) / count})
            sums, count, t0 = torch.zeros(2), 0, time.perf_counter()
        if done in ckpts:
            checkpoint(done)
        on_step(done, cfg.steps)
    if end < cfg.steps:
        return start
    run.finish({"steps": cfg.steps, "final_curve_score": run.metrics()[-1].get("test_score"),
                **_provenance(device)})
    return start


def _train_supervised(run: Run, cfg: SupervisedConfig, device, backend, progress, on_step) -> int:
    model = init_model(cfg, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = _resume(run, model, opt)
    x, y = cfg.load(train=True)
    ckpts = set(cfg.checkpoint_steps())
    if start == 0:
        _save(run, 0, model, opt)
    count, t0 = 0, time.perf_counter()
    for step in progress_bar(range(start, cfg.steps), enable=progress, desc=run.dir.name,
                             initial=start, total=cfg.steps):
        idx, out, loss = _supervised_step(model, opt, x, y, step, cfg, device)
        done, count = step + 1, count + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            acc = (out.argmax(1).cpu() == y[idx]).float().mean().item()
            run.log({"step": done, "train_loss": loss.item(), "train_score": acc,
                     "seconds_per_step": (time.perf_counter() - t0) / count})
            count, t0 = 0, time.perf_counter()
        if done in ckpts:
            _save(run, done, model, opt)
        on_step(done, cfg.steps)
    run.finish({"steps": cfg.steps, **_provenance(device)})
    return start


def finetune_start(run, n_way: int, step: int | None = None, seed: int = 0, device="cpu"):
    """The fine-tune baseline at meta-test ([L] §3.2): the body of a supervised run's checkpoint
    ``step`` (default: the last) under a fresh ``n_way`` head, Xavier-uniform weights (seeded) and
    zero bias, to be adapted with the meta-learners' inner loop. Returns ``(model, θ)``."""
    cfg = run.config
    if not isinstance(cfg, SupervisedConfig):
        raise TypeError(f"finetune_start needs a supervised run; {run.dir.name} is a {type(cfg).__name__}.")
    model = _build_in(cfg.dtype, "conv4", n_way=n_way, filters=cfg.filters).to(device)
    body = {k: v for k, v in run.load_checkpoint(step, map_location=device)["model"].items() if not k.startswith("head.")}
    theta = {k: v.detach().clone() for k, v in model.state_dict().items()}
    theta.update(body)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        w = torch.empty_like(theta["head.weight"])
        torch.nn.init.xavier_uniform_(w)
    theta["head.weight"], theta["head.bias"] = w, torch.zeros_like(theta["head.bias"])
    model.load_state_dict(theta)
    return model, {k: v for k, v in model.named_parameters()}
