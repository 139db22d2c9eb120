
import pytest
import torch
from conftest import requires_data

from mamlscope.core import data


@requires_data
def test_omniglot_shape_and_protocol_split():
    images = data.load_omniglot()
    assert images.shape == (1623, 20, 28, 28) and images.dtype == torch.uint8
    # strokes are bright on a dark background (inverted, as in Finn's code)
    assert images.float().mean() < 64 and images.max() == 255
    train, test = data.omniglot_split("train"), data.omniglot_split("test")
    assert len(train) == 1200 and len(test) == 423
    assert len(set(train.tolist()) | set(test.tolist())) == 1623


@requires_data
def test_tasks_are_deterministic_and_well_formed():
    tasks = data.omniglot_tasks("test", 5, 1, 3, seed=7)
    a, b, c = tasks.task(0), tasks.task(0), tasks.task(1)
    assert torch.equal(a.x_support, b.x_support) and torch.equal(a.x_query, b.x_query)
    assert not torch.equal(a.x_support, c.x_support)
    assert a.x_support.shape == (5, 1, 28, 28) and a.x_query.shape == (15, 1, 28, 28)
    assert a.y_support.tolist() == [0, 1, 2, 3, 4]
    assert a.y_query.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert 0.0 <= a.x_support.min() and a.x_support.max() <= 1.0
    batch = tasks.batch([0, 1])
    assert batch.x_query.shape == (2, 15, 1, 28, 28) and torch.equal(batch[0].x_query, a.x_query)
    # a different sampler seed gives different tasks
    assert not torch.equal(data.omniglot_tasks("test", 5, 1, 3, seed=8).task(0).x_support, a.x_support)


def test_rotation_is_one_multiple_of_90_degrees_per_class():
    # one distinct, asymmetric image per class: rotated copies must be exact rot90s of it
    base = torch.zeros(6, 4, 5, 5, dtype=torch.uint8)
    for c in range(6):
        base[c, :, 0, c % 5] = 255
        base[c, :, 1, 0] = 255
    tasks = data.ClassTasks(base, 3, 1, 3, seed=0, rotate=True)
    seen = set()
    for i in range(20):
        t = tasks.task(i)
        for c in range(3):
            imgs = torch.cat([t.x_support[t.y_support == c], t.x_query[t.y_query == c]])
            assert all(torch.equal(imgs[0], im) for im in imgs)  # same rotation within a class
            match = [k for k in range(4) for o in range(6)
                     if torch.equal(torch.rot90(base[o, 0].float() / 255, k, (-2, -1)), imgs[0, 0])]
            assert match, "a task image is not a 90-degree rotation of a dataset image"
            seen.update(match)
    assert seen == {0, 1, 2, 3}


def test_more_ways_than_classes_is_a_clear_error():
    images = torch.zeros(10, 20, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"n_way=11 is more ways than the 10 classes.*n_way <= 10"):
        data.ClassTasks(images, 11, 1, 1, seed=0)
    with pytest.raises(ValueError, match=r"only 20 per class"):
        data.ClassTasks(images, 5, 15, 6, seed=0)


@requires_data
def test_more_ways_than_omniglot_test_characters():
    with pytest.raises(ValueError, match="more ways than the 423 classes"):
        data.omniglot_tasks("test", 500, 1, 1, seed=0)


def test_missing_data_root_is_a_clear_error_and_touches_nothing(tmp_path, monkeypatch):
    root = tmp_path / "my-data"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(data.DataNotFoundError, match=r"(?s)Omniglot not found under the data root .*MAML_DATA"):
        data.load_omniglot(root, download=False)

    def offline(_root):
        raise OSError("no network")

    monkeypatch.setattr(data, "_download_omniglot", offline)
    with pytest.raises(data.DataNotFoundError, match=r"download failed: OSError: no network"):
        data.load_omniglot(root)
    with pytest.raises(data.DataNotFoundError, match="MNIST not found"):
        data.load_mnist(True, root, download=False)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    assert (root / "notes.txt").read_text() == "mine"


def test_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "new-root"

    def half_download(r):
        (r / "omniglot-py" / "images_background").mkdir(parents=True)
        raise OSError("no network")

    monkeypatch.setattr(data, "_download_omniglot", half_download)
    with pytest.raises(data.DataNotFoundError, match="download failed"):
        data.load_omniglot(root)
    assert not root.exists()


@requires_data
def test_mnist_through_torchvision():
    x, y = data.load_mnist(train=False)
    assert x.shape == (10000, 28, 28) and y.shape == (10000,) and set(y.tolist()) == set(range(10))


def test_sinusoid_tasks_respect_ranges():
    tasks = data.SinusoidTasks(k_shot=5, q_query=7, amplitude=(4.0, 5.0), phase=(0.0, 0.0), seed=3)
    for i in range(20):
        t = tasks.task(i)
        assert t.x_support.shape == (5, 1) and t.x_query.shape == (7, 1)
        x = torch.cat([t.x_support, t.x_query])
        y = torch.cat([t.y_support, t.y_query])
        amp = (y / torch.sin(x)).median()  # phase 0: y = A sin x
        assert 4.0 - 1e-4 <= amp <= 5.0 + 1e-4
        assert x.abs().max() <= 5.0
    assert torch.equal(tasks.task(3).x_query, tasks.task(3).x_query)
    with pytest.raises(ValueError, match="lower bound exceeds"):
        data.SinusoidTasks(amplitude=(5.0, 1.0))


def test_omniglot_subset_is_a_fixed_part_of_the_split():
    full = data.omniglot_split("train")
    sub = data.omniglot_subset("train", 50)
    assert len(sub) == 50 and torch.equal(sub, data.omniglot_subset("train", 50))
    assert set(sub.tolist()) <= set(full.tolist()) and torch.equal(sub, sub.sort().values)
    assert set(data.omniglot_subset("train", 20).tolist()) <= set(sub.tolist())   # nested: a prefix of one order
    assert torch.equal(data.omniglot_subset("train", 0), full)
    with pytest.raises(ValueError, match="has 1200 characters"):
        data.omniglot_subset("train", 1201)
