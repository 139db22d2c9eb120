"""Training on a real Dask LocalCluster (mamlscope.training.schedule): concurrent runs equal sequential
ones at the same thread count, a killed worker's run resumes to the uninterrupted result, a
duplicate request trains once, and the batch-job script carries the resources asked for."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from mamlscope.core import meta
from mamlscope.core.runs import Run, run_dir
from mamlscope.training import profiles, schedule
from mamlscope.training.plan import Planned

pytestmark = pytest.mark.slow


def _config(seed=0, steps=4, **kw):
    return replace(profiles.load("smoke").regulariser_setting, seed=seed, steps=steps, **kw)


def _sequential(cfg, root):
    """The reference: trained in this process, one thread, no Dask."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return meta.train(cfg, root=root, progress=False)
    finally:
        torch.set_num_threads(before)


def _same_run(a: Run, b: Run):
    assert a.checkpoint_steps() == b.checkpoint_steps()
    for step in a.checkpoint_steps():
        sa, sb = a.load_checkpoint(step)["model"], b.load_checkpoint(step)["model"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), f"step {step} differs"
    untimed = lambda run: [{k: v for k, v in r.items() if k != "seconds_per_step"} for r in run.metrics()]  # noqa: E731
    assert untimed(a) == untimed(b)


@pytest.fixture
def cluster_client(request):
    from distributed import Client

    cluster = schedule.local_cluster(request.param, threads=1)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("cluster_client", [2], indirect=True)
def test_two_runs_train_concurrently_and_equal_sequential_runs(cluster_client, tmp_path, capsys):
    cfgs = [_config(seed=0), _config(seed=1)]
    items = [Planned(c, run_dir(c, tmp_path / "dask")) for c in cfgs]
    done = schedule.train_all(items, cluster_client, threads=1, root=tmp_path / "dask", progress=False)
    assert [d["trained"] for d in done] == [c.steps for c in cfgs]
    assert done[0]["pid"] != done[1]["pid"]
    env = cluster_client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")})
    assert all(e == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"} for e in env.values()), env
    assert max(d["began"] for d in done) < min(d["ended"] for d in done), "the two runs did not overlap"
    for cfg in cfgs:
        _same_run(Run(cfg, tmp_path / "dask"), _sequential(cfg, tmp_path / "seq"))
    assert json.loads((run_dir(cfgs[0], tmp_path / "dask") / "final.json").read_text())["threads"] == 1
    out = capsys.readouterr().out  # not a terminal: plain lines, no bars
    assert "training 2 runs on 2 worker(s) × 1 thread(s)" in out and "[2/2]" in out and "\r" not in out
    again = schedule.train_all(items, cluster_client, threads=1, root=tmp_path / "dask", progress=False)
    assert again == []  # everything cached: nothing submitted


@pytest.mark.parametrize("cluster_client", [1], indirect=True)
def test_a_killed_worker_leaves_a_run_that_resumes_to_the_uninterrupted_result(cluster_client, tmp_path):
    cfg = _config(steps=80, checkpoint_every=10, log_every=5)
    root = tmp_path / "dask"
    future = cluster_client.submit(schedule.train_task, cfg, str(root), "cpu", 1, resources={"run": 1})
    run_path = run_dir(cfg, root)
    deadline = time.monotonic() + 120
    while not any(run_path.glob("ckpt/step_00000[1-9]0.pt")):
        assert time.monotonic() < deadline, "no checkpoint after step 0 within 2 minutes"
        time.sleep(0.01)
    (pid,) = cluster_client.run(os.getpid).values()
    assert not (run_path / "final.json").exists(), "the run finished before the worker could be killed"
    os.kill(pid, signal.SIGKILL)
    result = future.result(timeout=300)  # Dask reschedules the task on the restarted worker
    assert result["pid"] != pid and 0 < result["start"] < cfg.steps, result
    _same_run(Run(cfg, root), _sequential(cfg, tmp_path / "seq"))


@pytest.mark.parametrize("cluster_client", [2], indirect=True)
def test_a_concurrent_duplicate_request_trains_once(cluster_client, tmp_path):
    cfg = _config(steps=30)
    futures = [cluster_client.submit(schedule.train_task, cfg, str(tmp_path), "cpu", 1, pure=False,
                                     resources={"run": 1}) for _ in range(2)]
    a, b = (f.result(timeout=300) for f in futures)
    assert a["pid"] != b["pid"]
    assert sorted([a["trained"], b["trained"]]) == [0, cfg.steps]
    assert max(a["began"], b["began"]) < min(a["ended"], b["ended"]), "the second request did not wait"
    steps = [r["step"] for r in Run(cfg, tmp_path).metrics() if "train_loss" in r]
    assert steps == sorted(set(steps)), "a step was logged twice"


def test_the_lock_waits_for_a_trainer_in_another_process(tmp_path):
    cfg = _config(steps=3)
    run = Run(cfg, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
        "print('held', flush=True); time.sleep(3)"), str(run.dir / ".lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with run.lock(notice_after=0.2):
        waited = time.monotonic() - t0
    holder.wait()
    assert waited > 1.5


def test_a_cut_short_last_metrics_line_is_skipped_then_dropped_on_resume(tmp_path):
    cfg = _config(steps=4, checkpoint_every=2, log_every=1)
    run = meta.train(cfg, root=tmp_path, progress=False)
    complete = run.metrics()
    (run.dir / "final.json").unlink()
    (run.ckpt_dir / "step_0000004.pt").unlink()
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 5, "train_lo')
    assert run.metrics() == complete
    meta.train(cfg, root=tmp_path, progress=False)  # resumes from step 2
    untimed = lambda records: [{k: v for k, v in r.items() if k != "seconds_per_step"} for r in records]  # noqa: E731
    assert untimed(run.metrics()) == untimed(complete)


def test_estimates_are_positive_and_grow_with_steps():
    cfg = _config(steps=4)
    short, long = meta.estimate_seconds(cfg), meta.estimate_seconds(replace(cfg, steps=400))
    assert 0 < short < long
    assert meta.estimate_seconds(profiles.load("smoke").mnist_supervised) > 0


def test_cli_trains_a_chapters_runs_with_plain_logs(tmp_path):
    env = {**os.environ, "MAMLSCOPE_CACHE": str(tmp_path)}
    cmd = [sys.executable, "-m", "mamlscope", "runs", "train", "--profile", "smoke", "06_coherence_regulariser",
           "--workers", "2", "--threads-per-worker", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "training 7 runs on 2 worker(s) × 1 thread(s)" in out.stdout and "[7/7]" in out.stdout
    assert "\r" not in out.stdout + out.stderr
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert "all 7 runs at profile smoke are trained" in again.stdout


def test_slurm_job_script_asks_for_a_gpu_time_memory_and_the_shared_paths(capsys, tmp_path, monkeypatch):
    spec = schedule.JobSpec("slurm", threads=8, gpus=1, memory="32GB", walltime="12:00:00", queue="gpu",
                            directives=["--constraint=a100"], env={"MAMLSCOPE_CACHE": "/shared/mamlscope cache"})
    cluster = schedule.jobqueue_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH --gres=gpu:1", "#SBATCH -t 12:00:00", "#SBATCH --cpus-per-task=8", "#SBATCH -p gpu",
                 "#SBATCH --constraint=a100", "export MAMLSCOPE_CACHE='/shared/mamlscope cache'"):
        assert line in script, script
    assert "#SBATCH --mem=" in script and "--resources run=1" in script
    line = next(x for x in script.splitlines() if x.startswith("export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="))
    value = subprocess.run(["bash", "-c", f"{line}; {sys.executable} -c 'import dask.config as c, distributed; "
                            "print(c.get(\"distributed.nanny.pre-spawn-environ\"))'"], capture_output=True, text=True)
    assert value.stdout.strip() == str(schedule.worker_environ(8)), value
    from mamlscope.training.cli import main

    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    assert main(["train", "--profile", "paper", "--cluster", "slurm", "--job-script", "--gpus", "2",
                 "--walltime", "48:00:00", "--memory", "64GB"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --gres=gpu:2" in out and "#SBATCH -t 48:00:00" in out and f"MAMLSCOPE_CACHE={tmp_path}" in out
    with pytest.raises(ValueError, match="unknown cluster"):
        schedule.jobqueue_cluster(schedule.JobSpec("condor"))


def test_the_same_runs_on_one_and_on_two_workers_are_bit_identical(tmp_path):
    """The book's digits do not depend on the worker count (at a fixed thread count): float32
    runs trained by a 1-worker and a 2-worker cluster give the same weights and metrics."""
    from distributed import Client

    cfgs = [_config(seed=0, steps=6, dtype="float32"), _config(seed=1, steps=6, dtype="float32")]
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        cluster = schedule.local_cluster(workers, threads=schedule.BOOK_THREADS)
        try:
            with Client(cluster) as client:
                items = [Planned(c, run_dir(c, root)) for c in cfgs]
                done = schedule.train_all(items, client, threads=schedule.BOOK_THREADS, root=root, progress=False)
        finally:
            cluster.close()
        assert [d["trained"] for d in done] == [6, 6]
    for cfg in cfgs:
        assert cfg.dtype == "float32"
        _same_run(Run(cfg, tmp_path / "w1"), Run(cfg, tmp_path / "w2"))
