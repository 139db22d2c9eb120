import pytest
import torch
from torch.func import functional_call

from mamlscope.core.models import MLP, Conv4, adapted_parameter_names, build_model


def test_conv4_activations_by_name():
    m = Conv4(n_way=5, filters=16)
    x = torch.randn(7, 1, 28, 28)
    out, acts = m(x, return_activations=True)
    assert list(acts) == ["conv1", "conv2", "conv3", "conv4", "head"]
    assert [tuple(a.shape[1:]) for a in acts.values()] == [(16, 14, 14), (16, 7, 7), (16, 4, 4), (16, 2, 2), (5,)]
    assert torch.equal(out, acts["head"]) and m.feature_dim == 64
    # functionally, with other parameters θ
    theta = {n: p + 0.1 for n, p in m.named_parameters()}
    out2, acts2 = functional_call(m, theta, (x,), {"return_activations": True})
    assert not torch.allclose(out2, out) and acts2["conv1"].shape == acts["conv1"].shape


def test_batchnorm_is_transductive():
    m = Conv4(n_way=5, filters=8)
    x = torch.randn(10, 1, 28, 28)
    train_out = m.train()(x)
    assert torch.allclose(m.eval()(x), train_out)  # batch statistics in eval mode too
    assert not any("running" in n for n, _ in m.named_buffers())


def test_adapted_parameter_names():
    m = Conv4(n_way=5, filters=4)
    assert adapted_parameter_names(m, "head") == ["head.weight", "head.bias"]
    everything = adapted_parameter_names(m, "all")
    assert "conv1.conv.weight" in everything and not any(".bn." in n for n in everything)
    assert adapted_parameter_names(m, "from:conv4")[:2] == ["conv4.conv.weight", "conv4.conv.bias"]
    assert len(adapted_parameter_names(m, "all", include_batchnorm=True)) == len(list(m.parameters()))
    with pytest.raises(ValueError, match="from:conv3"):
        adapted_parameter_names(m, "conv3")


def test_mlp_and_builder():
    m = build_model("mlp")
    assert isinstance(m, MLP) and m.layer_names == ("fc1", "fc2", "head")
    out, acts = m(torch.randn(4, 1), return_activations=True)
    assert out.shape == (4, 1) and acts["fc2"].shape == (4, 40)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet")


def test_finn_variant_is_finn_et_al_s_network():
    torch.manual_seed(0)
    m = Conv4(n_way=20, filters=32, variant="finn")
    assert m.feature_dim == 32 and m.head.weight.shape == (20, 32)
    assert all(torch.count_nonzero(getattr(m, f"conv{i}").conv.bias) == 0 for i in range(1, 5))
    assert torch.count_nonzero(m.head.bias) == 0
    assert 0.9 < m.head.weight.std().item() < 1.1                      # N(0, 1)
    w = m.conv2.conv.weight                                               # Glorot uniform bound
    assert w.abs().max() <= (6 / (32 * 9 + 32 * 9)) ** 0.5 + 1e-7
    assert not m.conv1.bn.weight.requires_grad and torch.all(m.conv1.bn.weight == 1)  # offset only
    x = torch.randn(6, 1, 28, 28)
    out, acts = m(x, return_activations=True)
    torch.testing.assert_close(out, m.head(acts["conv4"].mean(dim=(2, 3))))  # spatial mean, not flatten
    loss = out.logsumexp(1).sum()
    loss.backward()
    assert m.conv1.bn.weight.grad is None and m.conv1.bn.bias.grad is not None
    with pytest.raises(ValueError, match="variant='keras'"):
        Conv4(n_way=5, variant="keras")
