"""Tests of ecasweep.attention against the paper (ECA-Net, arXiv 1910.03151) and the reference code.

Parameter counts are written out from Table 2; every gate is compared in float64 with an
independent formulation (the paper's ``eca_layer``, dense band / block-diagonal matrices, explicit
circular shifts); the fused backward (``_PooledGateScale``) is checked with ``gradcheck``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from ecasweep import bench
from ecasweep.models import attention
from ecasweep.models.attention import (
    KERNEL_VARIANTS,
    NATIVE_NAMES,
    accepted_arguments,
    adaptive_kernel_size,
    attention_names,
    create_attention,
    expected_params,
    is_attention,
    resolve_kernel_size,
)

#: ecasweep's own variants; timm's modules are tested in test_attention_timm.py
REGISTRY = {name: cls for name, cls in attention.REGISTRY.items() if name in NATIVE_NAMES}
F64 = torch.float64
CHANNELS = (16, 64, 256, 2048)

# (name, kwargs, the paper's parameter count as a function of C), Table 2 of the paper.
PARAM_CASES = [
    ("none", {}, lambda c: 0),
    ("se", {}, lambda c: 2 * c * c // 16),
    ("se", {"r": 4}, lambda c: 2 * c * c // 4),
    ("se-var1", {}, lambda c: 0),
    ("se-var2", {}, lambda c: c),
    ("se-var3", {}, lambda c: c * c),
    ("se-gc", {"groups": 16}, lambda c: c * c // 16),
    ("se-gc", {"group_size": 16}, lambda c: 16 * c),
    ("se-gc", {"group_size": 8}, lambda c: 8 * c),
    ("eca-ns", {"k": 3}, lambda c: 3 * c),
    ("eca-ns", {"k": 5}, lambda c: 5 * c),
    ("eca", {"k": 3}, lambda c: 3),
    ("eca", {"k": 7}, lambda c: 7),
    ("ceca", {"k": 3}, lambda c: 3),
    ("ceca", {"k": 9}, lambda c: 9),
]

# Small settings valid at C = 8, for the gradient checks.
SMALL_KWARGS = {"se": {"r": 4}, "se-gc": {"groups": 4}, "eca": {"k": 3}, "eca-ns": {"k": 3},
                "ceca": {"k": 5}}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make(name: str, channels: int = 8, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    module = create_attention(name, channels, **(kwargs or SMALL_KWARGS.get(name, {}))).to(F64)
    with torch.no_grad():  # non-trivial weights everywhere (some inits are small or zero)
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    return module


def randn(*shape: int, seed: int = 1, requires_grad: bool = False) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64).requires_grad_(requires_grad)


def pooled(x: Tensor) -> Tensor:
    return x.mean((2, 3))


def excite(x: Tensor, logits: Tensor) -> Tensor:
    return x * torch.sigmoid(logits)[:, :, None, None]


# --- parameter counts ---------------------------------------------------------------------------

def test_param_cases_cover_every_variant():
    assert {name for name, _, _ in PARAM_CASES} == set(REGISTRY) == set(attention_names()) - attention.TIMM_NAMES


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name, kwargs, formula", PARAM_CASES,
                         ids=[f"{n}-{kw}" for n, kw, _ in PARAM_CASES])
def test_parameter_count_matches_paper(name, kwargs, formula, channels):
    module = create_attention(name, channels, **kwargs)
    assert n_params(module) == formula(channels)
    assert expected_params(name, channels, **kwargs) == formula(channels)


def test_parameter_count_adaptive_k():
    for channels, k in ((64, 3), (256, 5), (2048, 7)):
        assert n_params(create_attention("eca", channels, k="adaptive")) == k
        assert n_params(create_attention("eca-ns", channels, k="adaptive")) == k * channels
        assert expected_params("eca-ns", channels, k="adaptive") == k * channels


# --- forward equals an independent formulation (float64) ----------------------------------------

# The paper's eca_layer (github.com/BangguWu/ECANet, models/eca_module.py), as the benchmark uses it.
ReferenceECA = bench.ReferenceECA


@pytest.mark.parametrize("channels, k, shape_hw", [(16, 3, (5, 7)), (64, 5, (4, 4)), (32, 1, (1, 1)),
                                                   (8, 7, (3, 2))])
def test_eca_equals_reference_forward_and_gradients(channels, k, shape_hw):
    ours = make("eca", channels, k=k)
    ref = ReferenceECA(k).to(F64)
    with torch.no_grad():
        ref.conv.weight.copy_(ours.conv.weight)
    x = randn(3, channels, *shape_hw, requires_grad=True)
    grad_out = randn(3, channels, *shape_hw, seed=2)

    out, out_ref = ours(x), ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out, (x, ours.conv.weight), grad_out)
    grads_ref = torch.autograd.grad(out_ref, (x, ref.conv.weight), grad_out)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def band_matrix(weight: Tensor) -> Tensor:
    """Dense (C, C) matrix B with B[c, c + j - k // 2] = weight[c, j] (zero outside the range)."""
    channels, k = weight.shape
    band = torch.zeros(channels, channels, dtype=weight.dtype)
    for c in range(channels):
        for j in range(k):
            src = c + j - k // 2
            if 0 <= src < channels:
                band[c, src] = weight[c, j]
    return band


@pytest.mark.parametrize("channels, k", [(8, 3), (16, 5), (6, 7), (4, 1)])
def test_eca_ns_equals_dense_band_matrix(channels, k):
    module = make("eca-ns", channels, k=k)
    x = randn(2, channels, 3, 4)
    expected = excite(x, pooled(x) @ band_matrix(module.weight.detach()).T)
    torch.testing.assert_close(module(x), expected)


def test_eca_ns_with_shared_weights_equals_eca():
    eca, ns = make("eca", 16, k=5), make("eca-ns", 16, k=5)
    with torch.no_grad():
        ns.weight.copy_(eca.conv.weight.view(1, 5).expand(16, 5))
    x = randn(2, 16, 3, 3)
    torch.testing.assert_close(ns(x), eca(x))


def test_se_var3_equals_full_matrix():
    module = make("se-var3", 12)
    w = module.conv.weight.detach()[:, :, 0]
    assert w.shape == (12, 12)
    x = randn(2, 12, 3, 3)
    torch.testing.assert_close(module(x), excite(x, pooled(x) @ w.T))


@pytest.mark.parametrize("kwargs, n_groups", [({"groups": 4}, 4), ({"group_size": 2}, 8),
                                              ({"groups": 16}, 16), ({"group_size": 16}, 1)])
def test_se_gc_equals_block_diagonal_matrix(kwargs, n_groups):
    module = make("se-gc", 16, **kwargs)
    w = module.conv.weight.detach()[:, :, 0]  # (C, C / G)
    size = 16 // n_groups
    blocks = [w[g * size:(g + 1) * size] for g in range(n_groups)]
    dense = torch.block_diag(*blocks)
    x = randn(2, 16, 3, 3)
    torch.testing.assert_close(module(x), excite(x, pooled(x) @ dense.T))


def test_se_var2_is_diagonal():
    module = make("se-var2", 8)
    w = module.conv.weight.detach().view(8)
    x = randn(2, 8, 3, 3)
    torch.testing.assert_close(module(x), excite(x, pooled(x) * w))


def test_se_var1_has_no_parameters_and_gates_with_pooled_input():
    x = randn(2, 8, 3, 3)
    torch.testing.assert_close(make("se-var1")(x), excite(x, pooled(x)))


@pytest.mark.parametrize("bias", [False, True])
def test_se_equals_two_layer_mlp(bias):
    module = make("se", 32, r=8, bias=bias)
    assert module.fc1.weight.shape == (4, 32) and module.fc2.weight.shape == (32, 4)
    x = randn(2, 32, 3, 3)
    hidden = torch.relu(pooled(x) @ module.fc1.weight.T + (module.fc1.bias if bias else 0))
    logits = hidden @ module.fc2.weight.T + (module.fc2.bias if bias else 0)
    torch.testing.assert_close(module(x), excite(x, logits.detach()))


def circular_conv(y: Tensor, w: Tensor) -> Tensor:
    """sum_j w[j] * y[(c + j - k // 2) mod C], written with torch.roll."""
    k = w.numel()
    return sum(w[j] * torch.roll(y, shifts=k // 2 - j, dims=1) for j in range(k))


@pytest.mark.parametrize("channels, k", [(8, 3), (16, 5), (5, 5)])
def test_ceca_wraps_around_the_channel_ends(channels, k):
    ceca = make("ceca", channels, k=k)
    w = ceca.conv.weight.detach().view(k)
    x = randn(2, channels, 3, 3)
    torch.testing.assert_close(ceca(x), excite(x, circular_conv(pooled(x), w)))

    eca = make("eca", channels, k=k)
    with torch.no_grad():
        eca.conv.weight.copy_(ceca.conv.weight)
    inner = slice(k // 2, channels - k // 2)
    torch.testing.assert_close(ceca(x)[:, inner], eca(x)[:, inner])  # same away from the ends
    assert not torch.allclose(ceca(x)[:, 0], eca(x)[:, 0])  # the wrap-around matters at the ends


@pytest.mark.parametrize("name", ["eca", "ceca", "eca-ns"])
def test_kernel_bias_is_added(name):
    with_bias = make(name, 8, k=3, bias=True)
    no_bias = make(name, 8, k=3)
    weight = with_bias.conv.weight if name != "eca-ns" else with_bias.weight
    bias = with_bias.conv.bias if name != "eca-ns" else with_bias.bias
    with torch.no_grad():
        (no_bias.conv.weight if name != "eca-ns" else no_bias.weight).copy_(weight)
    y = randn(2, 8)
    torch.testing.assert_close(with_bias.gate_logits(y), no_bias.gate_logits(y) + bias)


def test_none_is_identity():
    x = randn(2, 8, 3, 3)
    assert create_attention("none", 8)(x) is x


# --- gradients --------------------------------------------------------------------------------------

def params_of(module: nn.Module) -> tuple[Tensor, ...]:
    return tuple(p for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_gradcheck(name):
    module = make(name)
    x = randn(2, 8, 3, 4, requires_grad=True)
    # gradcheck perturbs its inputs in place, so passing the parameters themselves checks them too.
    assert torch.autograd.gradcheck(lambda x, *p: module(x), (x, *params_of(module)))


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n not in ("none", "se-var1")))
def test_gradcheck_with_a_frozen_parameter(name):
    module = make(name, bias=True, **SMALL_KWARGS.get(name, {}))
    first = next(module.parameters())
    first.requires_grad_(False)
    x = randn(2, 8, 3, 4, requires_grad=True)
    trainable = params_of(module)
    assert trainable and all(p is not first for p in trainable)
    assert torch.autograd.gradcheck(lambda x, *p: module(x), (x, *trainable))

    out = module(x)
    grads = torch.autograd.grad(out.sum(), (x, *trainable))
    assert all(g is not None for g in grads) and first.grad is None


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n not in ("none", "se-var1")))
def test_gradcheck_without_input_grad(name):
    module = make(name)
    x = randn(2, 8, 3, 4)
    assert torch.autograd.gradcheck(lambda *p: module(x), params_of(module))


def test_gradcheck_input_only_all_frozen():
    module = make("eca", 8, k=3).requires_grad_(False)
    x = randn(2, 8, 3, 4, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))


def test_backward_twice_with_retain_graph():
    module = make("eca", 8, k=3)
    x = randn(2, 8, 3, 3, requires_grad=True)
    out = module(x)
    first = torch.autograd.grad(out.sum(), (x, module.conv.weight), retain_graph=True)
    second = torch.autograd.grad(out.sum(), (x, module.conv.weight))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n not in ("none", "se-var1")))
def test_every_parameter_gets_a_gradient(name):
    module = create_attention(name, 32, **{**SMALL_KWARGS.get(name, {}), "bias": True})
    x = torch.randn(4, 32, 5, 5, requires_grad=True)
    target = torch.randn(4, 32, 5, 5)
    ((module(x) - target) ** 2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in module.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


def test_grad_out_broadcast_from_a_scalar_loss():
    """``out.sum()`` hands the backward an expanded (stride 0) gradient."""
    module = make("eca", 8, k=3)
    x = randn(2, 8, 3, 3, requires_grad=True)
    ref = ReferenceECA(3).to(F64)
    with torch.no_grad():
        ref.conv.weight.copy_(module.conv.weight)
    g, = torch.autograd.grad(module(x).sum(), x)
    g_ref, = torch.autograd.grad(ref(x).sum(), x)
    torch.testing.assert_close(g, g_ref)


# --- memory format, dtypes, modes --------------------------------------------------------------------

@pytest.mark.parametrize("name", list(REGISTRY))
def test_channels_last_in_channels_last_out(name):
    module = make(name)
    x = randn(2, 8, 5, 6)
    x_cl = x.clone().to(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    grad_out = randn(2, 8, 5, 6, seed=3)
    out, out_cl = module(x), module(x_cl)
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, out)

    g, = torch.autograd.grad(out, x, grad_out)
    g_cl, = torch.autograd.grad(out_cl, x_cl, grad_out.to(memory_format=torch.channels_last))
    torch.testing.assert_close(g_cl, g)
    if name != "none":
        assert g_cl.is_contiguous(memory_format=torch.channels_last)
        assert g.is_contiguous()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_no_grad_equals_grad_path(name):
    module = make(name).eval()
    x = randn(2, 8, 3, 4, requires_grad=True)
    out = module(x)
    with torch.no_grad():
        out_no_grad = module(x)
    torch.testing.assert_close(out_no_grad, out.detach(), rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(module(x.detach()), out.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_bfloat16_input(name):
    module = create_attention(name, 16, **SMALL_KWARGS.get(name, {}))
    x = torch.randn(2, 16, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    out = module(x)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    out.float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and x.grad.shape == x.shape
    assert all(p.grad.dtype == torch.float32 for p in module.parameters())
    torch.testing.assert_close(out.float(), module(x.float()), rtol=2e-2, atol=2e-2)
    with torch.no_grad():  # eval path: same gate precision as the grad path
        torch.testing.assert_close(module(x), out.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_bfloat16_autocast(name):
    module = create_attention(name, 16, **SMALL_KWARGS.get(name, {}))
    conv = nn.Conv2d(3, 16, 3, padding=1)
    images = torch.randn(2, 3, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = conv(images)
        assert features.dtype == torch.bfloat16
        out = module(features)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 16, 4, 4)
    out.float().sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


# --- adaptive kernel size --------------------------------------------------------------------------

@pytest.mark.parametrize("channels, k", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_adaptive_kernel_size_matches_paper(channels, k):
    # Eq. (12): t = int(|(log2 C + b) / gamma|), k = t if t is odd else t + 1.
    t = int(abs((math.log2(channels) + 1) / 2))
    assert (t if t % 2 else t + 1) == k
    assert adaptive_kernel_size(channels) == k
    assert adaptive_kernel_size(channels, gamma=2, beta=1) == k
    assert resolve_kernel_size("adaptive", channels) == k
    assert create_attention("eca", channels, k="adaptive").k == k


def test_adaptive_min_k_clamps_like_timm():
    assert adaptive_kernel_size(16) == adaptive_kernel_size(16, min_k=3) == 3
    # C = 4: (log2 4 + 1) / 2 = 1.5 -> t = 1 (odd) -> k = 1 by the paper's rule; timm clamps to 3.
    assert adaptive_kernel_size(4) == 1
    assert adaptive_kernel_size(4, min_k=3) == 3
    assert create_attention("eca", 4, k="adaptive").k == 1
    assert create_attention("eca", 4, k="adaptive", min_k=3).k == 3
    # min_k does not touch an explicit k
    assert create_attention("eca", 4, k=1, min_k=3).k == 1


def test_adaptive_gamma_beta():
    # (log2 256 + 2) / 4 = 2.5 -> t = 2 -> k = 3;   (log2 256 + 1) / 1 = 9 -> k = 9
    assert adaptive_kernel_size(256, gamma=4, beta=2) == 3
    assert adaptive_kernel_size(256, gamma=1, beta=1) == 9


# --- invalid arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 4, 0, -1, "foo", 3.0, True, None])
@pytest.mark.parametrize("name", sorted(KERNEL_VARIANTS))
def test_invalid_k(name, k):
    with pytest.raises(ValueError, match=r"\bk\b"):
        create_attention(name, 64, k=k)


@pytest.mark.parametrize("gamma", [0, -1, -0.5, "2", float("nan")])
def test_invalid_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        create_attention("eca", 64, k="adaptive", gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        adaptive_kernel_size(64, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):  # invalid even where k does not use it
        create_attention("eca", 64, k=3, gamma=gamma)


def test_invalid_min_k():
    with pytest.raises(ValueError, match="min_k"):
        create_attention("eca", 64, k="adaptive", min_k=2)


def test_se_r_must_divide_channels():
    with pytest.raises(ValueError, match=r"(?=.*\br=3\b)(?=.*\bC=64\b)"):
        create_attention("se", 64, r=3)
    with pytest.raises(ValueError, match=r"\br\b"):
        create_attention("se", 64, r=0)


@pytest.mark.parametrize("kwargs, arg", [({"groups": 5}, "groups"), ({"group_size": 3}, "group_size"),
                                         ({"groups": 0}, "groups")])
def test_se_gc_groups_must_divide_channels(kwargs, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        create_attention("se-gc", 64, **kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"groups": 4, "group_size": 16}])
def test_se_gc_takes_exactly_one_of_groups_and_group_size(kwargs):
    with pytest.raises(ValueError, match=r"(?=.*groups)(?=.*group_size)"):
        create_attention("se-gc", 64, **kwargs)


@pytest.mark.parametrize("name", ["foo", "ECA", "", None])
def test_unknown_attention_lists_valid_names(name):
    with pytest.raises(ValueError) as info:
        create_attention(name, 64)
    for valid in REGISTRY:
        assert valid in str(info.value)


@pytest.mark.parametrize("name, kwargs, arg", [("se", {"k": 3}, "k"), ("se-var1", {"r": 16}, "r"),
                                               ("eca", {"r": 16}, "r"), ("none", {"k": 3}, "k"),
                                               ("se-var3", {"groups": 4}, "groups")])
def test_unsupported_argument_is_named(name, kwargs, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        create_attention(name, 64, **kwargs)
    assert arg not in accepted_arguments(name)


@pytest.mark.parametrize("channels", [0, -4, 2.0, "64"])
@pytest.mark.parametrize("name, kwargs", [(n, SMALL_KWARGS.get(n, {})) for n in REGISTRY]
                         + [("se-gc", {"group_size": 4})])
def test_invalid_channels(name, kwargs, channels):
    with pytest.raises(ValueError, match="channels"):
        create_attention(name, channels, **kwargs)


def test_wrong_input_shape():
    module = create_attention("eca", 8)
    for bad in (torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3)):
        with pytest.raises(ValueError, match=r"\(N, 8, H, W\)"):
            module(bad)


def test_is_attention():
    assert all(is_attention(create_attention(n, 16, **SMALL_KWARGS.get(n, {}))) for n in REGISTRY)
    assert not is_attention(nn.Identity()) and not is_attention(nn.Conv2d(1, 1, 1))


# --- property test ------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(channels=st.integers(1, 40), k=st.sampled_from([1, 3, 5, 7, 9]), n=st.integers(1, 3),
       h=st.integers(1, 6), w=st.integers(1, 6), channels_last=st.booleans())
def test_property_eca_equals_reference(channels, k, n, h, w, channels_last):
    ours = make("eca", channels, k=k)
    ref = ReferenceECA(k).to(F64)
    with torch.no_grad():
        ref.conv.weight.copy_(ours.conv.weight)
    x = randn(n, channels, h, w)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    out = ours(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref(x))
    g, = torch.autograd.grad(out.square().sum(), x)
    g_ref, = torch.autograd.grad(ref(x).square().sum(), x)
    torch.testing.assert_close(g, g_ref)
