"""mamlscope.measure.controls: the matched random perturbation keeps each tensor's change norm,
is seeded, and points elsewhere."""
from collections import OrderedDict

import pytest
import torch

from mamlscope.measure.controls import matched_perturbation


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = OrderedDict(w=torch.randn(4, 3, generator=g), b=torch.randn(3, generator=g),
                        frozen=torch.randn(2, generator=g), count=torch.tensor(7))
    adapted = OrderedDict(w=theta["w"] + 0.1 * torch.randn(4, 3, generator=g),
                          b=theta["b"] + 2.0 * torch.randn(3, generator=g),
                          frozen=theta["frozen"].clone(), count=torch.tensor(9))
    return theta, adapted


def test_norms_match_per_tensor_and_the_direction_differs():
    theta, adapted = _pair()
    null = matched_perturbation(theta, adapted, 0)
    assert isinstance(null, OrderedDict) and list(null) == list(theta)
    for k in ("w", "b"):
        want = torch.linalg.vector_norm(adapted[k] - theta[k])
        assert torch.linalg.vector_norm(null[k] - theta[k]) == pytest.approx(float(want), rel=1e-5)
        cos = torch.nn.functional.cosine_similarity((null[k] - theta[k]).flatten(),
                                                    (adapted[k] - theta[k]).flatten(), dim=0)
        assert abs(float(cos)) < 0.99
    assert torch.equal(null["frozen"], theta["frozen"])   # did not move → stays
    assert torch.equal(null["count"], theta["count"])     # not floating → stays


def test_seeded_and_structure_preserving():
    theta, adapted = _pair()
    a, b = matched_perturbation(theta, adapted, 5), matched_perturbation(theta, adapted, 5)
    c = matched_perturbation(theta, adapted, torch.Generator().manual_seed(6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.allclose(a["w"], c["w"])
    as_list = matched_perturbation([theta["w"], (theta["b"],)], [adapted["w"], (adapted["b"],)], 5)
    assert isinstance(as_list, list) and isinstance(as_list[1], tuple)
    assert torch.equal(as_list[0], a["w"]) and torch.equal(as_list[1][0], a["b"])  # same draw order
    assert as_list[0].dtype == theta["w"].dtype and not as_list[0].requires_grad


def test_mismatched_structures_are_refused():
    theta, adapted = _pair()
    with pytest.raises(ValueError):
        matched_perturbation(theta, {"w": adapted["w"]}, 0)
    with pytest.raises(ValueError):
        matched_perturbation(theta["w"], adapted["b"], 0)
