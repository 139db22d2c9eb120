"""[A]'s pictures and numbers: the FC network, k-NN accuracy, unit extremes, Eq. 2, the claim values."""
import math

import numpy as np
import pytest
import torch

from mamlscope import claims, features
from mamlscope.models import FCNet, adapted_parameter_names

from conftest import requires_data
from test_inner import toy_tasks


def test_fcnet_is_agarwals_layout_with_batchnorm_and_named_activations():
    m = FCNet(n_way=10)
    sizes = [(b.linear.in_features, b.linear.out_features) for b in (m.fc1, m.fc2, m.fc3, m.fc4)]
    assert sizes == [(784, 256), (256, 128), (128, 64), (64, 64)] and m.head.out_features == 10
    out, acts = m(torch.rand(8, 1, 28, 28), return_activations=True)
    assert out.shape == (8, 10) and acts["fc4"].shape == (8, 64)
    assert torch.equal(acts["fc3"], torch.relu(acts["fc3.bn"]))
    assert torch.allclose(m(acts["fc2"], start="fc3"), out)
    assert all(".bn." not in n for n in adapted_parameter_names(m))


def test_knn_correct_matches_sklearn_where_the_vote_is_not_tied():
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 15)
    f = rng.normal(size=(60, 5)) + 1.5 * np.eye(4, 5)[y]
    ours = features.knn_correct(torch.tensor(f), torch.tensor(y), k=5).numpy()
    theirs = cross_val_predict(KNeighborsClassifier(5), f, y, cv=LeaveOneOut()) == y
    d = np.linalg.norm(f[:, None] - f[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    votes = np.stack([np.bincount(y[np.argsort(row)[:5]], minlength=4) for row in d])
    top = np.sort(votes, axis=1)
    untied = top[:, -1] > top[:, -2]
    assert untied.sum() >= 40 and (ours[untied] == theirs[untied]).all()  # ties: sklearn takes the lowest label
    separated = np.repeat(np.arange(3), 10)[:, None] * 100.0 + rng.normal(size=(30, 2))
    assert features.knn_correct(separated, np.repeat(np.arange(3), 10)).mean() == 1.0


def test_unit_extremes_and_busiest_units_read_the_named_layer():
    torch.manual_seed(0)
    m = FCNet(n_way=3)
    pool = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    a = features.features(m, pool, "fc3.bn")
    units = features.busiest_units(m, pool, "fc3.bn", n=2)
    assert units[0] == int(a.var(0).argmax())
    most, least = features.unit_extremes(m, pool, "fc3.bn", units, n=3)[units[0]]
    assert a[most[0], units[0]] == a[:, units[0]].max() and a[least[0], units[0]] == a[:, units[0]].min()


def test_eq2_converges_to_the_exact_product_then_rounds_off():
    torch.manual_seed(0)
    m = FCNet(n_way=3, hidden=(8, 8), in_features=144, activation="softplus")
    task = toy_tasks(n_tasks=1, n_way=3, shots=2, queries=2)[0]
    t = features.eq2_check(m, task, 0.4, [1e-3, 1e-4, 1e-6, 1e-12], dtype=torch.float64, repeats=1)
    err = t["Hv relative error"]
    assert 80 < err[1e-3] / err[1e-4] < 120      # central differences: truncation error O(ε²)…
    assert err[1e-6] < 1e-9 < err[1e-12]          # …until round-off dominates
    assert (t["meta-gradient relative error"] <= err + 1e-12).all()  # αHv is a correction to v


def test_claim_values_and_rules():
    y = torch.arange(4).repeat_interleave(25)
    good = {"knn": torch.ones(100, dtype=torch.float64), "knn_tsne": torch.ones(100, dtype=torch.float64),
            "knn_pca": torch.full((100,), 0.5, dtype=torch.float64), "silhouette": 0.3}
    assert claims.judge("A1", features.supervised_values(good, 100), "t").verdict == "reproduced"
    worse = dict(good, knn=torch.cat([torch.ones(50), torch.zeros(50)]).double())
    v = features.pair_values(worse, good)
    assert v["diff"] == pytest.approx(-0.5) and claims.judge("A1b", v, "t").verdict == "not reproduced"
    assert claims.judge("A1c", features.pair_values(good, good), "t").verdict == "reproduced"
    import pandas as pd

    tables = {"float64": pd.DataFrame({"Hv relative error": [1e-3, 1e-9], "meta-gradient relative error": [1e-4, 1e-10],
                                       "time / exact": [2.0, 2.0]}, index=[1e-2, 1e-6]),
              "float32": pd.DataFrame({"Hv relative error": [5e-3, 1e-1], "meta-gradient relative error": [5e-4, 1e-2],
                                       "time / exact": [2.0, 2.0]}, index=[1e-2, 1e-6])}
    v = features.eq2_values(tables)
    assert (v["f64_eps"], v["f32_eps"], v["f32_meta"]) == (1e-6, 1e-2, 5e-4)
    assert claims.judge("A1d", v, "t").verdict == "reproduced"
    assert claims.judge("A1a", {"mean": 0.9671, "ci95": 0.001, "seeds": 3}, "t").verdict == "reproduced"
    assert claims.judge("A1a", {"mean": 0.95, "ci95": 0.001, "seeds": 3}, "t").verdict == "not reproduced"


@requires_data
def test_supervised_epochs_visit_every_image_once_per_epoch_and_mnist_tasks(tmp_path):
    from mamlscope import data, meta, profiles

    cfg = profiles.load("cpu").features_supervised
    seen = torch.cat([cfg.batch_indices(s, 60_000) for s in range(235)])
    assert len(seen) == 60_000 and torch.equal(seen.sort().values, torch.arange(60_000))
    assert not torch.equal(cfg.batch_indices(0, 60_000), cfg.batch_indices(235, 60_000))  # reshuffled
    assert cfg.steps == 5 * 235 and cfg.weight_decay == 0.01 and cfg.batch_size == 256
    tasks = data.mnist_tasks("train", 5, 1, 2, seed=0)
    t = tasks.task(0)
    assert t.x_support.shape == (5, 1, 28, 28) and tasks.n_classes == 10
    with pytest.raises(ValueError, match="more ways"):
        data.mnist_tasks("test", 11, 1, 1, seed=0)
    smoke = profiles.load("smoke")
    run = meta.train(smoke.features_maml, root=tmp_path)
    assert run.dir.name.startswith("maml-fc-mnist-5w1s") and isinstance(run.load_model(), FCNet)
    sup = meta.train(smoke.features_supervised, root=tmp_path)
    assert isinstance(sup.load_model(), FCNet) and len(features.test_correct(sup)) == 10_000
