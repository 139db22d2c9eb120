"""The networks of the papers, with per-layer activations by name.

* :class:`Conv4` — Finn et al.'s (2017) four blocks of [3×3 conv, BatchNorm, ReLU] (stride 2 for
  Omniglot, or stride 1 + 2×2 max-pool), then a linear head. Layers are named
  ``conv1 … conv4, head``. BatchNorm is *transductive*: batch statistics at train and test time
  (``track_running_stats=False``), as in Finn's TensorFlow code. Two variants (``variant``):

  - ``"book"`` — PyTorch's default initialisation, BatchNorm with scale and offset, conv4
    flattened before the head;
  - ``"finn"`` — Finn et al.'s released Omniglot network (``cbfinn/maml``, ``maml.py``): Xavier
    (Glorot uniform) convolutions with zero biases, BatchNorm with an offset only (scale fixed at
    1: ``tf.contrib.layers.batch_norm``'s default), conv4 averaged over space before the head,
    head weights N(0, 1) and zero bias.
* :class:`MLP` — the 1-40-40-1 ReLU regressor for sinusoids; layers ``fc1, fc2, head``.
* :class:`FCNet` — Agarwal's 784-256-128-64-64 classifier with BatchNorm; layers ``fc1 … fc4, head``.

``model(x, return_activations=True)`` returns ``(output, {layer: activation})`` in one pass, so
every metric can ask for "layer k of θ on inputs X" — also functionally, with any parameters θ:
``torch.func.functional_call(model, theta, (x,), {"return_activations": True})``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "softplus": F.softplus, "tanh": torch.tanh}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r}; use one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


VARIANTS = ("book", "finn")


def _start_index(model, start: str | None) -> int:
    if start is None:
        return 0
    if start not in model.layer_names:
        raise ValueError(f"start={start!r} is not a layer of {type(model).__name__}: {list(model.layer_names)}.")
    return model.layer_names.index(start)


class ConvBlock(nn.Module):
    """3×3 conv → BatchNorm (batch statistics) → ReLU [→ 2×2 max-pool]."""

    def __init__(self, c_in: int, c_out: int, pooling: str, activation: str = "relu", variant: str = "book"):
        super().__init__()
        self.act = _activation(activation)
        stride = 2 if pooling == "stride" else 1
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(c_out, track_running_stats=False)
        self.pool = pooling == "max"
        if variant == "finn":
            nn.init.xavier_uniform_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)
            self.bn.weight.requires_grad_(False)  # offset only: the scale stays 1

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return F.max_pool2d(x, 2, ceil_mode=False) if self.pool else x


class Conv4(nn.Module):
    """Conv4 of [F]/[G]/[R]. Input ``(B, in_channels, H, W)`` → logits ``(B, n_way)``.

    With stride 2 on 28×28 inputs the feature maps are 14, 7, 4, 2 pixels wide, so the
    penultimate representation (flattened ``conv4``) has ``filters · 2 · 2`` features.
    ``activation`` is ReLU in the papers; a smooth one (softplus) makes the MAML meta-loss
    differentiable everywhere, which finite-difference checks need (with ReLU the inner-loop
    gradient jumps at every kink, so the meta-loss itself is discontinuous).
    """

    layer_names = ("conv1", "conv2", "conv3", "conv4", "head")

    def __init__(self, n_way: int, filters: int = 64, in_channels: int = 1,
                 image_size: int = 28, pooling: str = "stride", activation: str = "relu",
                 variant: str = "book"):
        super().__init__()
        if pooling not in ("stride", "max"):
            raise ValueError(f"pooling={pooling!r}; use 'stride' (Omniglot) or 'max' (MiniImageNet).")
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r}; use one of {list(VARIANTS)}.")
        self.variant = variant
        self.conv1 = ConvBlock(in_channels, filters, pooling, activation, variant)
        self.conv2 = ConvBlock(filters, filters, pooling, activation, variant)
        self.conv3 = ConvBlock(filters, filters, pooling, activation, variant)
        self.conv4 = ConvBlock(filters, filters, pooling, activation, variant)
        size = image_size
        for _ in range(4):
            size = (size + 1) // 2 if pooling == "stride" else size // 2
        self.spatial_mean = variant == "finn"
        self.feature_dim = filters if self.spatial_mean else filters * size * size
        self.head = nn.Linear(self.feature_dim, n_way)
        if variant == "finn":
            nn.init.normal_(self.head.weight, 0.0, 1.0)
            nn.init.zeros_(self.head.bias)

    def forward(self, x, return_activations: bool = False, start: str | None = None):
        """Logits (and, with ``return_activations``, every layer's activation by name). With
        ``start`` the pass begins at that layer and ``x`` is the previous layer's activation
        (conv4's for ``start="head"``): an inner loop that only adapts the layers from ``start``
        on computes the frozen ones once (:func:`mamlscope.core.inner.adapt`)."""
        acts = OrderedDict()
        for name in self.layer_names[_start_index(self, start):-1]:
            x = getattr(self, name)(x)
            acts[name] = x
        out = self.head(head_input(self, x))
        acts["head"] = out
        return (out, acts) if return_activations else out


class MLP(nn.Module):
    """The sinusoid regressor of [F]/[L]: ``in → 40 → 40 → out`` with ReLU."""

    def __init__(self, in_features: int = 1, hidden: tuple[int, ...] = (40, 40), out_features: int = 1,
                 activation: str = "relu"):
        super().__init__()
        self.act = _activation(activation)
        sizes = (in_features, *hidden)
        self.layer_names = tuple(f"fc{i + 1}" for i in range(len(hidden))) + ("head",)
        for name, a, b in zip(self.layer_names, sizes[:-1], sizes[1:]):
            setattr(self, name, nn.Linear(a, b))
        self.head = nn.Linear(sizes[-1], out_features)
        self.feature_dim = sizes[-1]

    def forward(self, x, return_activations: bool = False, start: str | None = None):
        """As :meth:`Conv4.forward` (``start``: begin at that layer, ``x`` its input)."""
        acts = OrderedDict()
        for name in self.layer_names[_start_index(self, start):-1]:
            x = self.act(getattr(self, name)(x))
            acts[name] = x
        out = self.head(x)
        acts["head"] = out
        return (out, acts) if return_activations else out


class FCBlock(nn.Module):
    """Linear → BatchNorm (batch statistics) → ReLU."""

    def __init__(self, n_in: int, n_out: int, activation: str = "relu"):
        super().__init__()
        self.act = _activation(activation)
        self.linear = nn.Linear(n_in, n_out)
        self.bn = nn.BatchNorm1d(n_out, track_running_stats=False)

    def forward(self, x, return_bn: bool = False):
        z = self.bn(self.linear(x))
        return (self.act(z), z) if return_bn else self.act(z)


class FCNet(nn.Module):
    """Agarwal's fully-connected baseline [A]: 784 → 256 → 128 → 64 → 64 → classes, each hidden
    layer followed by BatchNorm and ReLU (batch statistics, as :class:`Conv4`). Images
    ``(B, 1, 28, 28)`` are flattened. Layers ``fc1 … fc4, head``; with ``return_activations``
    the BatchNorm outputs (before the ReLU) are also given, as ``fc1.bn`` … ``fc4.bn``."""

    def __init__(self, n_way: int = 10, hidden: tuple[int, ...] = (256, 128, 64, 64), in_features: int = 784,
                 activation: str = "relu"):
        super().__init__()
        sizes = (in_features, *hidden)
        self.layer_names = tuple(f"fc{i + 1}" for i in range(len(hidden))) + ("head",)
        for name, a, b in zip(self.layer_names, sizes[:-1], sizes[1:]):
            setattr(self, name, FCBlock(a, b, activation))
        self.feature_dim = sizes[-1]
        self.head = nn.Linear(self.feature_dim, n_way)

    def forward(self, x, return_activations: bool = False, start: str | None = None):
        """As :meth:`Conv4.forward`."""
        acts = OrderedDict()
        if start is None:
            x = x.flatten(1)
        for name in self.layer_names[_start_index(self, start):-1]:
            x, z = getattr(self, name)(x, return_bn=True)
            acts[f"{name}.bn"], acts[name] = z, x
        out = self.head(x)
        acts["head"] = out
        return (out, acts) if return_activations else out


def head_input(model: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """What the head reads of the last body layer's activation ``a``: averaged over space (Finn
    et al.'s Conv4), else flattened per example."""
    return a.mean(dim=(-2, -1)) if getattr(model, "spatial_mean", False) else a.flatten(1)


def layer_of(param_name: str) -> str:
    """The layer a parameter belongs to: ``"conv2.conv.weight"`` → ``"conv2"``."""
    return param_name.split(".", 1)[0]


def adapted_parameter_names(model: nn.Module, adapt: str = "all", *, include_batchnorm: bool = False) -> list[str]:
    """Names of the parameters the inner loop updates.

    ``adapt``: ``"all"`` (MAML), ``"head"`` (ANIL), or ``"from:<layer>"`` (that layer and every
    later one, e.g. ``"from:conv3"``; the body below it is frozen). BatchNorm scale and shift are
    meta-learned but not adapted unless ``include_batchnorm`` (Finn et al.'s code keeps them out
    of the fast weights).
    """
    layers = list(model.layer_names)
    if adapt == "all":
        keep = set(layers)
    elif adapt == "head":
        keep = {"head"}
    elif adapt.startswith("from:") and adapt[5:] in layers:
        keep = set(layers[layers.index(adapt[5:]):])
    else:
        options = ["all", "head"] + [f"from:{l}" for l in layers]
        raise ValueError(f"adapt={adapt!r} is not one of {options}.")
    return [n for n, _ in model.named_parameters()
            if layer_of(n) in keep and (include_batchnorm or ".bn." not in n)]


def build_model(arch: str, **kwargs) -> nn.Module:
    """``"conv4"`` → :class:`Conv4`, ``"mlp"`` → :class:`MLP`, ``"fc"`` → :class:`FCNet`."""
    archs = {"conv4": Conv4, "mlp": MLP, "fc": FCNet}
    if arch not in archs:
        raise ValueError(f"unknown architecture {arch!r}; use one of {sorted(archs)}.")
    return archs[arch](**kwargs)
