"""Reruns that cannot damage the book (``python -m mamlscope rerun``).

* Bad input is refused before any kernel starts, in seconds, with a one-line error and no
  traceback, and ``book/`` stays byte-identical (profile, parameter names, types, ranges, device,
  data root, conflicting options).
* A chapter that fails, is killed mid-training or is interrupted (Ctrl-C) leaves its notebook
  and its records exactly as they were; the failed notebook is kept elsewhere; the kernel and
  its training stop.
* A profile other than the book's never writes into ``book/`` unless asked (``--in-place``).
"""
import argparse
import asyncio
import contextvars
import gc
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import requires_data

from mamlscope.publish import notebooks, parameters, rerun

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_goldens  # noqa: E402


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def run_cli(args, env_extra=None, workdir=None, timeout=120, root=None):
    env = make_goldens.isolated_env(workdir)
    env.pop("MAMLSCOPE_RESULTS")  # in place: records would go to the project's book/results
    env.update(env_extra or {})
    code = ("import sys; from mamlscope.publish import rerun; "
            f"sys.exit(rerun.main(sys.argv[1:], root={str(root)!r} if {root is not None} else None))")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.perf_counter() - start


# --------------------------------------------------------------------------------------------
# Refused before anything runs
# --------------------------------------------------------------------------------------------
BAD = {
    "unknown profile": (["-p", "profile=nosuch"], {}, "unknown profile 'nosuch'"),
    "not an integer": (["-p", "test_tasks=abc"], {}, "test_tasks is Optional[int]; got 'abc'"),
    "no such parameter": (["-p", "nosuch=1"], {}, "no parameter 'nosuch'"),
    "out of range": (["01_maml_on_omniglot", "-p", "test_tasks=-5"], {}, "test_tasks=-5: must be >= 2"),
    "not a chapter's parameter": (["02_early_layers_change_little", "-p", "test_tasks=600"], {},
                                  "02_early_layers_change_little has no parameter 'test_tasks'"),
    "no GPU": (["-p", "device=cuda"], {}, "CUDA is not available"),
    "no data": ([], {"MAML_DATA": "/nonexistent/mamlscope-data"}, "not found under the data root"),
    "options disagree": (["--in-place", "--output-dir", "/tmp/x"], {}, "--in-place and --output-dir disagree"),
}


@requires_data
@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_before_any_kernel_and_book_is_untouched(case, tmp_path):
    args, env, message = BAD[case]
    if case == "no GPU" and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    before = tree_digest(ROOT / "book")
    proc, seconds = run_cli(args, env, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("error: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "Kernel" not in proc.stderr
    assert not (tmp_path / "mamlscope-cache" / "runs").exists(), "a run directory was created"
    assert tree_digest(ROOT / "book") == before
    if case in ("not an integer", "no such parameter"):
        assert seconds < 10, f"refused after {seconds:.1f} s"


def _args(*argv):
    parser = argparse.Namespace(chapters=[], profile=None, parameter=[], output_dir=None, in_place=False,
                                html=False)
    it = iter(argv)
    for a in it:
        if a == "-p":
            parser.parameter.append(next(it))
        elif a == "--profile":
            parser.profile = next(it)
        elif a == "--output-dir":
            parser.output_dir = Path(next(it))
        elif a == "--in-place":
            parser.in_place = True
        else:
            parser.chapters.append(a)
    return parser


@requires_data
def test_a_parameter_goes_to_the_chapters_that_take_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    job = rerun.prepare(_args("-p", "test_tasks=600"), ROOT)
    takers = [n for n in job.pages if "test_tasks" in job.parameters[n]]
    assert takers == ["01_maml_on_omniglot", "06_coherence_regulariser"]
    assert all(job.parameters[n]["test_tasks"] == 600 for n in takers)
    assert job.parameters["scorecard"] == {"profile": "cpu"} and job.pages[-1] == "scorecard"
    assert any("test_tasks goes to" in note for note in job.notes)


@requires_data
def test_only_the_books_profile_writes_into_book(monkeypatch, tmp_path):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    monkeypatch.delenv("MAMLSCOPE_RESULTS", raising=False)
    cpu = rerun.prepare(_args("01_maml_on_omniglot"), ROOT)
    assert cpu.in_book and cpu.notebook_dir == ROOT / "book" and cpu.results_dir == ROOT / "book" / "results"
    for profile in ("smoke", "paper", "paper-dry"):
        job = rerun.prepare(_args("01_maml_on_omniglot", "--profile", profile), ROOT)
        assert not job.in_book and job.notebook_dir == (ROOT / "_build" / profile).resolve()
        assert job.results_dir == job.notebook_dir / "results"
    asked = rerun.prepare(_args("01_maml_on_omniglot", "--profile", "smoke", "--in-place"), ROOT)
    assert asked.in_book
    out = rerun.prepare(_args("01_maml_on_omniglot", "--output-dir", str(tmp_path / "o")), ROOT)
    assert out.notebook_dir == tmp_path / "o" and out.results_dir == tmp_path / "o" / "results"


def test_parameter_types_and_ranges():
    opt_int = {"inferred_type_name": "Optional[int]", "default": "None", "help": "tasks"}
    assert parameters.type_problem("n", None, opt_int) is None
    assert parameters.type_problem("n", 5, opt_int) is None
    assert "got 'abc'" in parameters.type_problem("n", "abc", opt_int)
    assert "got True" in parameters.type_problem("n", True, opt_int)      # a bool is not an int
    assert "got 2.5" in parameters.type_problem("n", 2.5, opt_int)
    plain = {"inferred_type_name": "int", "default": "4"}
    assert "cannot be null" in parameters.type_problem("n", None, plain)
    assert parameters.type_problem("x", 1, {"inferred_type_name": "float", "default": "0.5"}) is None
    assert parameters.type_problem("b", None, {"inferred_type_name": "bool", "default": "None"}) is None
    assert parameters.value_problem("test_tasks", 1) == "test_tasks=1: must be >= 2"
    assert parameters.value_problem("device", "gpu").startswith("device='gpu': use auto, cpu")
    assert parameters.value_problem("device", "cuda:1") is None
    declared = {"n_tasks": {"inferred_type_name": "int", "default": "4"},
                "eval_task": {"inferred_type_name": "int", "default": "4"}}
    assert "held-out task must not be" in parameters.check(declared, {"eval_task": 2}, "03")[0]


@pytest.mark.parametrize("name", notebooks.chapters(ROOT) + notebooks.summary_pages(ROOT))
def test_every_integer_parameter_has_a_range(name):
    for parameter, info in notebooks.parameters(ROOT, name).items():
        types, _ = parameters._base_types(info["inferred_type_name"] or "")
        if "int" in types:
            assert parameter in parameters.MINIMUM, (
                f"{name}: the int parameter {parameter!r} has no entry in mamlscope.publish.parameters.MINIMUM")


# --------------------------------------------------------------------------------------------
# Failures while executing: a small project of fake chapters (seconds, no training)
# --------------------------------------------------------------------------------------------
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}} ipython3
:tags: [parameters]

profile: str = "cpu"   # the profile
pid_file: str = ""     # where to write the kernel's pid
```

```{{code-cell}} ipython3
import os, time
from mamlscope.verdict import results
folder = results.results_root() / profile
folder.mkdir(parents=True, exist_ok=True)
(folder / "{claim}.json").write_text('{{"new": true}}')
if pid_file:
    open(pid_file, "w").write(str(os.getpid()))
{body}
```
"""
FAKE = {"91_ok": ("T1", "print('done')"), "92_fails": ("T2", "raise ValueError('boom')"),
        "93_sleeps": ("T3", "time.sleep(300)")}


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "book" / "results" / "smoke").mkdir(parents=True)
    toc = "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(f"  - file: book/{n}\n" for n in FAKE)
    (root / "_toc.yml").write_text(toc)
    (root / "book" / "intro.md").write_text("# Intro\n")
    for name, (claim, body) in FAKE.items():
        (root / "book" / f"{name}.md").write_text(HEADER.format(title=name, claim=claim, body=body))
        (root / "book" / f"{name}.ipynb").write_text('{"committed": "notebook"}')
        (root / "book" / "results" / "smoke" / f"{claim}.json").write_text('{"old": true}')
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MAMLSCOPE_RESULTS", str(root / "book" / "results"))
    monkeypatch.setenv("MAMLSCOPE_PROGRESS", "0")
    return root


def test_a_chapter_that_succeeds_replaces_its_notebook_and_records(project, capsys):
    assert rerun.main(["91_ok", "--profile", "smoke", "--in-place"], root=project) == 0
    nb = json.loads((project / "book" / "91_ok.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "remove-cell" in injected[0]["metadata"]["tags"]
    assert json.loads((project / "book" / "results" / "smoke" / "T1.json").read_text()) == {"new": True}
    assert "91_ok: executed in" in capsys.readouterr().out
    report = json.loads((project / "book" / "results" / "smoke" / "execution" / "91_ok.json").read_text())
    assert report["page"] == "91_ok" and report["workers"] == 1 and report["seconds"] > 0


def test_a_failing_chapter_leaves_its_notebook_and_records_byte_identical(project, tmp_path, capsys):
    before = tree_digest(project / "book")
    assert rerun.main(["92_fails", "--profile", "smoke", "--in-place"], root=project) == 1
    assert tree_digest(project / "book") == before
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: 92_fails failed: in cell [3]: ValueError: boom", err
    assert "Traceback" not in err
    failed = tmp_path / "cache" / "failed" / "smoke" / "92_fails.ipynb"
    assert str(failed) in err and failed.is_file()
    nb = json.loads(failed.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "remove-cell" in injected[0]["metadata"]["tags"]  # hidden even in a failed notebook


def _start(project, tmp_path, chapter_args):
    pid_file = tmp_path / "kernel.pid"
    env = dict(os.environ)
    # Ctrl-C as in a terminal: SIGINT raises KeyboardInterrupt even if this test runs where it is
    # ignored (a shell's background job passes SIG_IGN on to its children)
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from mamlscope.publish import rerun; "
            f"sys.exit(rerun.main(sys.argv[1:], root={str(project)!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code, *chapter_args, "-p", f"pid_file={pid_file}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not (pid_file.is_file() and pid_file.read_text()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    return proc, int(pid_file.read_text())


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ctrl_c_stops_the_kernel_and_leaves_the_book_intact(project, tmp_path):
    before = tree_digest(project / "book")
    proc, kernel = _start(project, tmp_path, ["93_sleeps", "--profile", "smoke", "--in-place"])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    deadline = time.time() + 10
    while not _gone(kernel) and time.time() < deadline:
        time.sleep(0.2)
    assert _gone(kernel), "the kernel kept running after Ctrl-C"
    assert "interrupted in 93_sleeps" in err and "Traceback" not in err
    assert tree_digest(project / "book") == before


class NotebookClient:  # stands in for nbclient's, whose tasks a Ctrl-C leaves on the loop
    async def async_execute_cell(self, end):
        if end == "dies":
            from nbclient.exceptions import DeadKernelError
            raise DeadKernelError("Kernel died")
        await asyncio.get_running_loop().create_future()  # pending for ever


def _leftover_task_reports(quiet: bool, end: str) -> list[str]:
    """What asyncio reports about an interrupted cell's task left on the loop, collected after
    its kernel died (the race CI hit: "Task exception was never retrieved" and a traceback)."""
    from jupyter_core.utils import ensure_event_loop

    reports = []
    handler = logging.Handler()
    handler.emit = lambda record: reports.append(record.getMessage())
    logging.getLogger("asyncio").addHandler(handler)

    def scenario():
        loop = ensure_event_loop()
        task = loop.create_task(NotebookClient().async_execute_cell(end))
        loop.run_until_complete(asyncio.sleep(0.01))
        if quiet:
            notebooks._quiet_interrupted_cell()
        del task
        gc.collect()
        loop.close()

    try:
        contextvars.Context().run(scenario)
    finally:
        asyncio.set_event_loop(None)
        logging.getLogger("asyncio").removeHandler(handler)
    return reports


@pytest.mark.parametrize("end", ["dies", "pending"])
def test_an_interrupted_cells_leftover_tasks_are_not_reported(end):
    assert _leftover_task_reports(quiet=False, end=end)  # what asyncio prints without it
    assert _leftover_task_reports(quiet=True, end=end) == []


def test_a_killed_kernel_leaves_the_book_intact(project, tmp_path):
    before = tree_digest(project / "book")
    proc, kernel = _start(project, tmp_path, ["93_sleeps", "--profile", "smoke", "--in-place"])
    os.kill(kernel, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert err.startswith("error: 93_sleeps failed:") and "Traceback" not in err, err
    assert tree_digest(project / "book") == before


# --------------------------------------------------------------------------------------------
# The real chapter 1, killed mid-training, on a copy of the book
# --------------------------------------------------------------------------------------------
@requires_data
@pytest.mark.slow
def test_chapter_killed_mid_training_leaves_the_book_byte_identical_and_resumes(tmp_path):
    from mamlscope.core.runs import checkpoint_steps

    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(ROOT / "_toc.yml", project / "_toc.yml")
    shutil.copytree(ROOT / "book", project / "book")
    before = tree_digest(project / "book")
    env = make_goldens.isolated_env(tmp_path)
    env["MAMLSCOPE_RESULTS"] = str(project / "book" / "results")
    code = ("import sys; from mamlscope.publish import rerun; "
            f"sys.exit(rerun.main(sys.argv[1:], root={str(project)!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code, "01_maml_on_omniglot", "--profile", "smoke",
                             "--in-place", "-p", "train_steps=100000"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "mamlscope-cache" / "runs"
    deadline = time.time() + 180
    try:
        while not any(checkpoint_steps(d) and checkpoint_steps(d)[-1] > 0
                      for d in (runs.iterdir() if runs.is_dir() else [])):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.5)
        kernels = [p for p in psutil.Process(proc.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
        assert kernels, "no kernel found"
        for k in kernels:
            k.kill()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert "01_maml_on_omniglot failed" in err.splitlines()[0] and "Traceback" not in err
    assert tree_digest(project / "book") == before
    trained = [d for d in runs.iterdir() if checkpoint_steps(d)]
    assert trained and not any((d / "final.json").exists() for d in trained)  # resumable, not finished


@pytest.mark.slow
def test_html_of_an_output_folder_is_its_own_book(project, tmp_path, capsys):
    (project / "_config.yml").write_text('title: "test"\nonly_build_toc_files: true\n'
                                         'exclude_patterns: ["book/[0-9][0-9]_*.md", "book/results/*"]\n'
                                         'execute:\n  execute_notebooks: "off"\n')
    import nbformat

    for name in ("92_fails", "93_sleeps"):  # the pages not executed come from book/
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")]),
                       project / "book" / f"{name}.ipynb")
    before = tree_digest(project / "book")
    out = tmp_path / "out"
    assert rerun.main(["91_ok", "--profile", "smoke", "--output-dir", str(out), "--html"], root=project) == 0
    assert tree_digest(project / "book") == before               # book/ untouched, records included
    assert json.loads((out / "results" / "smoke" / "T1.json").read_text()) == {"new": True}
    page = out / "_book" / "_build" / "html" / "book" / "91_ok.html"
    assert page.is_file() and "done" in page.read_text()         # the executed notebook, not book/'s
    assert "HTML: " in capsys.readouterr().out


def test_the_graph_executes_chapters_on_workers_atomically(project, capsys):
    """``--train``: the pages run as tasks on a 2-worker Dask cluster; one that fails leaves its
    notebook and records intact and does not stop the other, whose execution is reported."""
    before = (project / "book" / "92_fails.ipynb").read_bytes()
    argv = ["91_ok", "92_fails", "--profile", "smoke", "--in-place", "--train", "--workers", "2"]
    assert rerun.main(argv, root=project) == 1
    assert (project / "book" / "92_fails.ipynb").read_bytes() == before
    assert json.loads((project / "book" / "results" / "smoke" / "T2.json").read_text()) == {"old": True}
    assert json.loads((project / "book" / "results" / "smoke" / "T1.json").read_text()) == {"new": True}
    assert "cells" in json.loads((project / "book" / "91_ok.ipynb").read_text())
    report = json.loads((project / "book" / "results" / "smoke" / "execution" / "91_ok.json").read_text())
    assert report["threads"] == 1 and report["workers"] == 2 and report["seconds"] > 0
    out, err = capsys.readouterr()
    assert "predicted" in out and "91_ok: executed in" in out
    assert "error: 92_fails failed: in cell [3]: ValueError: boom" in err


@requires_data
def test_the_long_profile_writes_beside_the_book_and_waits_for_its_run(monkeypatch, tmp_path):
    """``long``: an error that says how it comes to exist until its run is chosen; then its
    notebooks go to book/long/ and its records beside the book's (book/results/long/)."""
    from mamlscope.training import profiles

    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    monkeypatch.delenv("MAMLSCOPE_RESULTS", raising=False)
    if "long" not in profiles.PROFILES:
        with pytest.raises(rerun.UsageError, match="regime fork"):
            rerun.prepare(_args("02_early_layers_change_little", "--profile", "long"), ROOT)
    monkeypatch.setitem(profiles.PROFILES, "long", profiles.long_profile("finn-queries", 1000))
    job = rerun.prepare(_args("02_early_layers_change_little", "--profile", "long"), ROOT)
    assert not job.in_book and job.notebook_dir == ROOT / "book" / "long"
    assert job.results_dir == ROOT / "book" / "results"
