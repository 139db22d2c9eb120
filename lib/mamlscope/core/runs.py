"""Training runs addressed by their configuration: config → hash → run directory.

A run directory ``<cache root>/runs/<name>-<hash12>/`` holds

* ``config.json``   — the full configuration (its SHA-256 is the directory's key);
* ``ckpt/step_0000500.pt`` — checkpoints (model, optimiser, step), written atomically;
* ``metrics.jsonl`` — one JSON record per logged step;
* ``final.json``    — written last; its presence means the run is finished and is reused;
* ``.lock``         — held (``flock``) by the one process training the run, released by the
  operating system when that process ends, however it ends.

Any two chapters asking for the same configuration share one run; an interrupted run resumes
from its newest checkpoint. Nothing is silently overwritten: an unreadable checkpoint stops the
run with an error that says which file and what to do, and the file is left where it is.

``python -m mamlscope runs plan|train`` lists and trains the runs the chapters need
(:mod:`mamlscope.training.plan`, :mod:`mamlscope.training.schedule`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from mamlscope.paths import atomic_write, cache_root

RUN_FORMAT = 1  # bump when a change to the training code changes what a config produces

# A field added to a configuration after runs were cached carries ``metadata={"added": True}``:
# it enters the hash only when it differs from its default, so every run cached before the
# field existed keeps its hash (and its directory). The default of such a field must never
# change afterwards (tests/test_runs.py pins the hashes of the default configurations).
ADDED = "added"


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (e.g. truncated by a crash)."""


class RunConfigMismatch(RuntimeError):
    """A run directory holds a different configuration than its name promises."""


def config_dict(config) -> dict:
    """A dataclass config as a plain dict, tagged with its type and the run format."""
    return {"type": type(config).__name__, "run_format": RUN_FORMAT, **dataclasses.asdict(config)}


def _added_defaults(config) -> dict:
    """``{name: default}`` of the fields added after runs were cached (``metadata["added"]``)."""
    return {f.name: f.default for f in dataclasses.fields(config) if f.metadata.get(ADDED)}


def hashed_dict(config) -> dict:
    """What the hash covers: :func:`config_dict` without the added fields that keep their
    default (so adding a defaulted field changes no existing hash)."""
    d = config_dict(config)
    for name, default in _added_defaults(config).items():
        if d[name] == _plain_json(default):
            del d[name]
    return d


def _plain_json(value):
    return json.loads(json.dumps(value))


def config_hash(config) -> str:
    """SHA-256 of the canonical JSON of :func:`hashed_dict` (sorted keys, no spaces)."""
    blob = json.dumps(hashed_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def run_dir(config, root=None) -> Path:
    """Where the run of ``config`` lives (``<cache root>/runs/<name>-<hash12>``); creates nothing."""
    return cache_root(root) / "runs" / f"{config.name}-{config_hash(config)[:12]}"


def checkpoint_steps(directory: Path) -> list[int]:
    """Steps with a checkpoint in run directory ``directory``, ascending (reads, creates nothing)."""
    return sorted(int(p.stem[5:]) for p in (Path(directory) / "ckpt").glob("step_*.pt"))


class Run:
    """The directory of one training run. ``config`` is a dataclass with a ``name`` property."""

    def __init__(self, config, root=None):
        self.config = config
        self.hash = config_hash(config)
        self.dir = run_dir(config, root)
        self.ckpt_dir = self.dir / "ckpt"
        self._check_or_write_config()

    def __repr__(self) -> str:
        return f"Run({self.dir.name}, finished={self.finished})"

    # -- configuration ---------------------------------------------------------------------
    def _check_or_write_config(self) -> None:
        path = self.dir / "config.json"
        mine = config_dict(self.config)
        if path.is_file():
            try:
                theirs = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise RunConfigMismatch(
                    f"{path} is not valid JSON ({err}); the run directory {self.dir} is damaged. "
                    "Move it aside to retrain (nothing was changed).") from err
            # a config.json written before a field was added lacks it: it had the default
            theirs = {**_plain_json(_added_defaults(self.config)), **theirs}
            if theirs != _plain_json(mine):
                raise RunConfigMismatch(
                    f"{path} holds a different configuration than this run's hash promises. "
                    f"Move {self.dir} aside to retrain (nothing was changed).")
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: p.write_text(json.dumps(mine, indent=2, sort_keys=True)))

    # -- one trainer at a time ----------------------------------------------------------------
    @contextmanager
    def lock(self, notice_after: float = 2.0):
        """Hold the run's lock (``<run>/.lock``, an ``flock``) while training it, so that no two
        processes, on one machine or on a cluster's shared filesystem, train the same run at
        once. Waits for a process that holds it (saying so on stderr after ``notice_after``
        seconds); the lock dies with its holder, so a killed trainer leaves a resumable run."""
        lock = FileLock(self.dir / ".lock")
        try:
            lock.acquire(timeout=notice_after)
        except Timeout:
            print(f"{self.dir.name}: another process is training this run; waiting for it.",
                  file=sys.stderr, flush=True)
            lock.acquire()
        try:
            yield self
        finally:
            lock.release()

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_path(self, step: int) -> Path:
        return self.ckpt_dir / f"step_{step:07d}.pt"

    def checkpoint_steps(self) -> list[int]:
        """Steps that have a checkpoint, ascending."""
        return checkpoint_steps(self.dir)

    def save_checkpoint(self, step: int, state: dict) -> Path:
        """Write ``state`` (tensors, numbers, dicts) for ``step`` atomically (temp file + rename)."""
        path = self.checkpoint_path(step)
        atomic_write(path, lambda p: torch.save({"step": step, "run_hash": self.hash, **state}, p))
        return path

    def load_checkpoint(self, step: int | None = None, map_location="cpu") -> dict:
        """The checkpoint at ``step`` (default: the newest). Raises :class:`CorruptCheckpointError`
        with the file's path and a fix when it cannot be read; never deletes it."""
        steps = self.checkpoint_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"run {self.dir} has no checkpoint yet; train it first.")
            step = steps[-1]
        path = self.checkpoint_path(step)
        if not path.is_file():
            raise FileNotFoundError(f"run {self.dir} has no checkpoint at step {step}; it has {steps}.")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:
            earlier = [s for s in steps if s < step]
            hint = (f"move it aside (e.g. rename it to {path.name}.corrupt) to resume from step "
                    f"{earlier[-1]}" if earlier else "move it aside to start the run afresh")
            raise CorruptCheckpointError(
                f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it was probably "
                f"truncated by an interrupted write. It was left untouched: {hint}.") from err
        if not isinstance(state, dict) or state.get("run_hash") != self.hash or state.get("step") != step:
            raise CorruptCheckpointError(
                f"checkpoint {path} does not belong to this run (step or run hash differ); "
                "it was left untouched: move it aside to continue.")
        return state

    def load_model(self, step: int | None = None, device="cpu"):
        """The run's model (``config.build_model()``) with the weights of checkpoint ``step``
        (default: the newest), on ``device``."""
        model = self.config.build_model().to(device)
        model.load_state_dict(self.load_checkpoint(step, map_location=device)["model"])
        return model

    # -- metrics ---------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def log(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def metrics(self) -> list[dict]:
        """The logged records. A last line cut short (the process was killed while appending it)
        is skipped; it is dropped for good when the run resumes (:meth:`truncate_metrics`)."""
        if not self.metrics_path.is_file():
            return []
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        records = []
        for i, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i < len(lines) - 1:
                    raise
        return records

    def truncate_metrics(self, step: int) -> None:
        """Drop records logged after ``step`` (they will be recomputed identically on resume)."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= step]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        atomic_write(self.metrics_path, lambda p: p.write_text(text))

    # -- completion ------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return (self.dir / "final.json").is_file()

    def finish(self, summary: dict) -> None:
        atomic_write(self.dir / "final.json",
                            lambda p: p.write_text(json.dumps(summary, indent=2, sort_keys=True)))

    def summary(self) -> dict:
        return json.loads((self.dir / "final.json").read_text())
