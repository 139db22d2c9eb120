"""The book as one graph (mamlscope.publish.graph): ranks, the predicted wall time, and the dependencies of
pages on runs and of summary pages on chapters."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mamlscope.publish import graph


@dataclass
class _Item:  # the parts of plan.Planned that graph.build reads
    name: str
    chapters: list
    status: str = "missing"

    @property
    def dir(self):
        return Path("/runs") / self.name


@dataclass
class _Job:
    root: Path
    profile: str = "cpu"
    pages: list = field(default_factory=list)
    results_dir: Path = Path("/nonexistent")


def _nodes(tmp_path, seconds):
    job = _Job(tmp_path, pages=["ch1", "ch2", "scorecard"])
    items = [_Item("long", ["ch1", "ch2"]), _Item("short", ["ch2"]), _Item("done", ["ch1"], status="trained")]
    for name, s in seconds.items():  # the execution report of the pages' last execution
        path = job.results_dir = tmp_path / "results"
        (path / "cpu" / "execution").mkdir(parents=True, exist_ok=True)
        (path / "cpu" / "execution" / f"{name}.json").write_text(f'{{"seconds": {s}}}')
    return {n.key: n for n in graph.build(job, items, [100.0, 10.0, 0.0], summary_pages=("scorecard",))}


def test_pages_wait_for_their_runs_and_the_summary_for_every_chapter(tmp_path):
    nodes = _nodes(tmp_path, {"ch1": 5, "ch2": 20, "scorecard": 1})
    assert set(nodes) == {"train-long", "train-short", "page-ch1", "page-ch2", "page-scorecard"}  # no trained run
    assert nodes["page-ch1"].deps == ["train-long"]
    assert sorted(nodes["page-ch2"].deps) == ["train-long", "train-short"]
    assert sorted(nodes["page-scorecard"].deps) == ["page-ch1", "page-ch2"]
    # rank: own seconds + the longest path after it
    assert nodes["page-scorecard"].rank == 1
    assert nodes["page-ch2"].rank == 21 and nodes["page-ch1"].rank == 6
    assert nodes["train-long"].rank == 100 + 21 and nodes["train-short"].rank == 10 + 21


def test_predicted_wall_time_is_the_list_schedule(tmp_path):
    nodes = list(_nodes(tmp_path, {"ch1": 5, "ch2": 20, "scorecard": 1}).values())
    # one worker: everything in a row
    assert graph.predict(nodes, 1) == pytest.approx(100 + 10 + 5 + 20 + 1)
    # two workers: long ‖ short, then ch2 (after long) ‖ ch1, then the scorecard
    assert graph.predict(nodes, 2) == pytest.approx(100 + 20 + 1)
    assert graph.predict(nodes, 8) == pytest.approx(100 + 20 + 1)
    # beside another task each takes 1.5× longer; one worker never runs two
    assert graph.predict(nodes, 2, 1.5) == pytest.approx(1.5 * (100 + 20 + 1))
    assert graph.predict(nodes, 1, 1.5) == graph.predict(nodes, 1)
    with pytest.raises(ValueError, match="contention"):
        graph.predict(nodes, 2, 0.5)


def test_a_page_without_a_measurement_uses_its_notebooks_duration(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "ch1.ipynb").write_text('{"metadata": {"papermill": {"duration": 42.5}}}')
    job = _Job(tmp_path)
    assert graph.page_seconds(job, "ch1") == 42.5
    assert graph.page_seconds(job, "ch9") == graph.DEFAULT_PAGE_SECONDS
    # book/ holds the cpu profile's notebooks: another profile does not read their durations
    assert graph.page_seconds(_Job(tmp_path, profile="smoke"), "ch1") == graph.DEFAULT_PAGE_SECONDS
