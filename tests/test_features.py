"""[A]'s pictures and numbers: the FC network, k-NN accuracy, unit extremes, Eq. 2, the claim values."""
import math

import numpy as np
import pytest
import torch
from conftest import requires_data
from test_inner import toy_tasks

from mamlscope.evidence import Evidence
from mamlscope.core.models import FCNet, adapted_parameter_names
from mamlscope.measure import features
from mamlscope.verdict import claims


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


# -- the contrasts the rules read, against hand computation -----------------------------------
def _sklearn_loo_correct(f, y, k=5):
    """Leave-one-out k-NN correctness by scikit-learn (the reference)."""
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    return (cross_val_predict(KNeighborsClassifier(k), f, y, cv=LeaveOneOut()) == y).astype(float)


def _hand_gain(a, b):
    d = np.asarray(a, float) - np.asarray(b, float)
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def _two_class_spaces(n=80, seed=0):
    """Two classes (an odd k never ties): a well separated space, a noisier one, pure noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    good = rng.normal(size=(n, 6)) + 2.5 * np.eye(2, 6)[y]
    noisy = rng.normal(size=(n, 6)) + 0.8 * np.eye(2, 6)[y]
    noise = rng.normal(size=(n, 6))
    return y, good, noisy, noise


def test_gain_is_the_paired_difference_of_5nn_correctness_as_sklearn_counts_it():
    y, good, noisy, _ = _two_class_spaces()
    ours = {name: features.knn_correct(torch.tensor(f), torch.tensor(y)) for name, f in (("a", good), ("b", noisy))}
    ref = {name: _sklearn_loo_correct(f, y) for name, f in (("a", good), ("b", noisy))}
    assert all(np.array_equal(ours[k].numpy(), ref[k]) for k in ours)
    g = features.gain("g", ours["a"], ours["b"])
    assert (g["g"], g["g_lo"], g["g_hi"]) == pytest.approx(_hand_gain(ref["a"], ref["b"]))
    assert g["g"] > 0 and features.gain("g", ours["b"], ours["b"])["g_hi"] == 0.0


def test_pixels_are_the_networks_input_flattened():
    x = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    p = features.pixels(x)
    assert p.shape == (5, 784) and p.dtype == torch.float64
    assert torch.equal(p, (x.float() / 255).double().reshape(5, -1))      # as _as_input scales them


def _quality(f, y, planes=("pca", "tsne")):
    return features.cluster_quality(torch.tensor(f), torch.tensor(y), planes=planes)


def test_a1_values_are_gains_over_the_controls_and_the_rule_rejects_a_null():
    y, good, noisy, noise = _two_class_spaces()
    rng = np.random.default_rng(1)
    q, raw, null = _quality(good, y), _quality(noisy, y), _quality(rng.normal(size=good.shape), y)
    ref = _quality(noise, y, planes=())
    by_seed = {"0": q["knn"], "1": q["knn"]}
    v = features.supervised_values(q, raw, ref, by_seed=by_seed)
    assert (v["gain_raw"], v["gain_raw_lo"], v["gain_raw_hi"]) == pytest.approx(
        _hand_gain(_sklearn_loo_correct(good, y), _sklearn_loo_correct(noisy, y)))
    assert v["gain_raw_tsne"] == pytest.approx(float((q["knn_tsne"] - raw["knn_tsne"]).mean()))
    assert v["random_knn"] == pytest.approx(_sklearn_loo_correct(noise, y).mean())
    assert v["seed_gain_raw_lo"] == {"0": v["gain_raw_lo"], "1": v["gain_raw_lo"]}
    assert claims.judge("A1", v, "t", null_values=v).verdict == "inconclusive"   # a control it passes
    null_v = features.supervised_values(null, raw, ref, by_seed={"0": null["knn"], "1": null["knn"]})
    r = claims.judge("A1", v, "t", null_values=null_v)
    assert (r.verdict, r.null_verdict) == ("reproduced", "not reproduced")
    assert claims.seeds_record("A1", v, "seed_gain_raw")["passing"] == 2
    raw_as_layer = features.supervised_values(raw, raw, ref)    # raw pixels in the layer's place
    assert raw_as_layer["gain_raw"] == 0 and claims.claim("A1").rule.judge(
        {**raw_as_layer, "seed_gain_raw_lo": {"0": 0.0}})[0] == "not reproduced"


def _knn_vector(n_right, n=100):
    return torch.cat([torch.ones(n_right), torch.zeros(n - n_right)]).double()


def test_a1b_a1c_need_non_inferiority_and_gains_over_both_controls():
    sup, maml = {"knn": _knn_vector(95)}, {"knn": _knn_vector(96)}
    raw, rnd = {"knn": _knn_vector(60)}, {"knn": _knn_vector(40)}
    v = features.pair_values(maml, sup, raw, rnd, supervised_by_seed={"0": sup["knn"], "1": _knn_vector(99)})
    assert (v["diff"], v["gain_raw"], v["gain_random"]) == pytest.approx((0.01, 0.36, 0.56))
    assert v["seed_diff"] == pytest.approx({"0": 0.01, "1": -0.03})
    null = features.pair_values(rnd, sup, raw, {"knn": _knn_vector(41)}, supervised_by_seed={"0": sup["knn"]})
    assert claims.claim("A1b").rule.judge(null)[0] == "not reproduced"
    r = claims.judge("A1b", v, "t", null_values=null)
    assert r.verdict == "partly" and r.null_verdict == "not reproduced"   # not non-inferior to seed 1
    assert claims.seeds_record("A1b", v, "seed_diff")["passing"] == 1
    c = features.pair_values(maml, sup, raw, rnd)
    assert claims.judge("A1c", c, "t", null_values=features.pair_values(raw, sup, raw, rnd)).verdict == "reproduced"
    # non-inferior, but the supervised network is no better than pixels: the gains are decisive
    weak = features.pair_values({"knn": _knn_vector(61)}, {"knn": _knn_vector(61)}, raw, rnd)
    assert weak["diff_lo"] > -0.02 and claims.claim("A1c").rule.judge(weak)[0] == "not reproduced"


def test_a1a_compares_the_papers_run_with_a_prediction_interval():
    from scipy import stats as st

    accs = [0.971, 0.9735, 0.975]
    v = features.baseline_values(accs)
    half = st.t.ppf(0.975, 2) * np.std(accs, ddof=1) * math.sqrt(1 + 1 / 3)
    assert (v["pi_lo"], v["pi_hi"]) == pytest.approx((np.mean(accs) - half, np.mean(accs) + half))
    assert v["ci95"] == pytest.approx(st.t.ppf(0.975, 2) * np.std(accs, ddof=1) / math.sqrt(3))
    assert v["ci95"] < np.mean(accs) - claims.AGARWAL_BASELINE < half   # outside our mean's, inside one run's
    null = features.baseline_values([0.09, 0.1, 0.115])
    r = claims.judge("A1a", v, "t", null_values=null)
    assert (r.verdict, r.null_verdict) == ("reproduced", "not reproduced")
    assert "above the paper's 96.71%" in r.measured
    assert claims.judge("A1a", features.baseline_values([0.95, 0.951, 0.952]), "t",
                        null_values=null).verdict == "not reproduced"
    low = claims.judge("A1a", features.baseline_values([0.95, 0.951, 0.952]), "t", null_values=null).measured
    assert "below the paper's 96.71%" in low
    wide = claims.judge("A1a", features.baseline_values([0.95, 0.97, 0.99]), "t", null_values=null)
    assert wide.verdict == "inconclusive" and "half-width" in wide.precondition and "FAILS" in wide.precondition
    assert claims.judge("A1a", features.baseline_values(accs[:2]), "t", null_values=null).verdict == "inconclusive"


def test_eq2_controls_go_through_the_same_error_code():
    torch.manual_seed(0)
    m = FCNet(n_way=3, hidden=(8, 8), in_features=144, activation="softplus")
    task = toy_tasks(n_tasks=1, n_way=3, shots=2, queries=2)[0]
    c = features.eq2_controls(m, task, 0.4, dtype=torch.float64)
    first, rand = c.loc[features.FIRST_ORDER], c.loc[features.RANDOM_VECTOR]
    q, _, v, exact = features._one_step(m, task, 0.4, torch.float64)
    hv, vf = features._flat(exact()), features._flat(v)
    assert first["Hv relative error"] == pytest.approx(1.0)
    assert first["meta-gradient relative error"] == pytest.approx(float(0.4 * hv.norm() / (vf - 0.4 * hv).norm()))
    assert 1.2 < rand["Hv relative error"] < 1.6                       # ≈ √2 for a random direction
    t = features.eq2_check(m, task, 0.4, [1e-3, 1e-5], dtype=torch.float64, repeats=1)
    tables, controls = {"float64": t, "float32": t}, {"float64": c, "float32": c}
    values, null = features.eq2_values(tables, controls), features.eq2_null_values(controls)
    assert values["f32_meta_ratio"] == pytest.approx(values["f32_meta"] / first["meta-gradient relative error"])
    assert null == pytest.approx({"f64_best": 1.0, "f32_best": 1.0, "f32_meta": first["meta-gradient relative error"],
                                  "f32_meta_ratio": 1.0})
    r = claims.judge("A1d", values, "t", null_values=null)
    assert (r.verdict, r.null_verdict) == ("reproduced", "not reproduced")
    rnd = features.eq2_null_values(controls, features.RANDOM_VECTOR)
    assert claims.claim("A1d").rule.judge(rnd)[0] == "not reproduced"


@pytest.mark.parametrize("claim_id", ["A1", "A1a", "A1b", "A1c", "A1d"])
def test_every_decisive_check_failing_gives_not_reproduced(claim_id):
    rule = claims.claim(claim_id).rule
    values = {}
    for c in (*rule.decisive, *rule.secondary):        # passing values for every key …
        ok = c.threshold + 1.0 if c.op in (">", ">=") else c.threshold - 1.0
        values[c.key] = {"0": ok} if c.each else ok
    assert rule.judge(values)[0] == "reproduced"
    for c in rule.decisive:                              # … then every decisive check failing
        values[c.key] = c.threshold - 1.0 if c.op in (">", ">=") else c.threshold + 1.0
    assert rule.judge(values)[0] == "not reproduced"


def test_control_table_shows_the_rules_verdict_on_each_row():
    good = {"gain_raw_lo": 0.1, "gain_random_lo": 0.1, "gain_raw_tsne_lo": 0.1, "seed_gain_raw_lo": {"0": 0.1}}
    null = dict(good, gain_raw_lo=-0.3)
    t = claims.control_table(Evidence("A1", good, {"control": null}, label="trained", columns={"gain_raw_lo": "low end"}))
    assert list(t["the rule's verdict"]) == ["reproduced", "not reproduced"]
    assert list(t["low end"]) == ["+10.0", "-30.0"]
    v = {**good, "gain_raw": 0.2, "gain_raw_hi": 0.3}
    assert claims.control_table(Evidence("A1", v, columns={"gain_raw": "g"}))["g"].iloc[0] == "+20.0 [+10.0, +30.0]"


@requires_data
def test_supervised_epochs_visit_every_image_once_per_epoch_and_mnist_tasks(tmp_path):
    from mamlscope.core import data, meta
    from mamlscope.training import profiles

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
