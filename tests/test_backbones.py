"""Backbones: parameter counts against torchvision and the paper, attention placement, kernel sizes
per stage, FLOPs, memory formats."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torchvision
from torch import nn

from ecasweep.models.attention import is_attention
from ecasweep.models.backbones import (
    AttentionBottleneck,
    backbone_names,
    build_model,
    stage_channels,
    summarize,
)

RESNET50_PARAMS = 25_557_032  # torchvision's resnet50(), 1000 classes


@functools.lru_cache(maxsize=None)
def shared_model(backbone: str, attention: str = "none", **kwargs) -> nn.Module:
    """Built once per argument set, for tests that only read the model (or deep-copy a part)."""
    return build_model(backbone, attention, num_classes=1000, **kwargs)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if is_attention(m)]


def cifar_resnet_params(depth: int, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> int:
    """He et al. 2016 CIFAR ResNet with option-A (parameter-free) shortcuts, counted by hand."""
    n = (depth - 2) // 6
    conv = lambda cin, cout: 9 * cin * cout  # noqa: E731  3x3, no bias
    bn = lambda c: 2 * c  # noqa: E731
    total = conv(in_channels, width) + bn(width)
    cin = width
    for c in (width, 2 * width, 4 * width):
        for _ in range(n):
            total += conv(cin, c) + bn(c) + conv(c, c) + bn(c)
            cin = c
    return total + 4 * width * num_classes + num_classes


# --- parameter counts ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, builder", [
    ("resnet-18", torchvision.models.resnet18), ("resnet-34", torchvision.models.resnet34),
    ("resnet-50", torchvision.models.resnet50), ("resnet-101", torchvision.models.resnet101),
    ("resnet-152", torchvision.models.resnet152), ("mobilenet-v2", torchvision.models.mobilenet_v2),
])
def test_vanilla_is_torchvisions_model(name, builder):
    ours, theirs = build_model(name, num_classes=1000), builder(num_classes=1000)
    assert type(ours) is type(theirs)
    assert n_params(ours) == n_params(theirs)
    shapes = lambda model: {k: v.shape for k, v in model.state_dict().items()}  # noqa: E731
    assert shapes(ours) == shapes(theirs)
    assert attention_modules(ours) == []


def test_resnet50_parameter_count_is_torchvisions_documented_one():
    assert n_params(shared_model("resnet-50")) == RESNET50_PARAMS


@pytest.mark.parametrize("k", [[3, 5, 5, 7], "3557", "official"])
def test_resnet50_eca_per_stage_k_adds_80_parameters(k):
    model = build_model("resnet-50", "eca", num_classes=1000, k=k)
    summary = summarize(model, (3, 32, 32))
    assert summary["kernel_sizes"] == [3, 5, 5, 7]
    assert summary["attention_params"] == 3 * 3 + 4 * 5 + 6 * 5 + 3 * 7 == 80
    assert summary["total_params"] == RESNET50_PARAMS + 80
    for stage, ks in enumerate([3, 5, 5, 7], start=1):
        assert {block.attn.k for block in getattr(model, f"layer{stage}")} == {ks}


def test_resnet50_eca_adaptive_k():
    model = shared_model("resnet-50", "eca", k="adaptive")
    summary = summarize(model, (3, 32, 32))
    assert summary["kernel_sizes"] == [5, 5, 5, 7]
    assert summary["attention_params"] == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7 == 86
    assert summary["total_params"] == RESNET50_PARAMS + 86
    # the same network as torchvision's, plus one attention module per block
    backbone_shapes = {k: v.shape for k, v in model.state_dict().items() if ".attn." not in k}
    assert backbone_shapes == {k: v.shape for k, v in shared_model("resnet-50").state_dict().items()}


def test_cifar_resnet20_has_option_a_parameter_count():
    assert cifar_resnet_params(20) == 269_722
    model = build_model("resnet-20")
    assert n_params(model) == 269_722
    assert n_params(build_model("resnet-56", num_classes=100)) == cifar_resnet_params(56, 100)
    assert n_params(build_model("resnet-8", width=8, in_channels=1)) == cifar_resnet_params(8, width=8,
                                                                                           in_channels=1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


# --- placement -------------------------------------------------------------------------------------

def test_se_in_every_resnet50_bottleneck():
    model = shared_model("resnet-50", "se", r=16)
    blocks_and_channels = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
    expected = sum(n * 2 * c * c // 16 for n, c in blocks_and_channels)
    assert summarize(model, (3, 32, 32))["attention_params"] == expected
    assert n_params(model) == RESNET50_PARAMS + expected
    blocks = [m for m in model.modules() if isinstance(m, AttentionBottleneck)]
    assert len(blocks) == 16
    assert all(b.attn.channels == b.bn3.num_features for b in blocks)
    assert [c for _, c in blocks_and_channels] == stage_channels("resnet-50")


def test_se_var3_in_every_cifar_resnet20_block():
    model = build_model("resnet-20", "se-var3")
    assert summarize(model, (3, 32, 32))["attention_params"] == 3 * (16**2 + 32**2 + 64**2)
    assert [m.channels for m in attention_modules(model)] == [16] * 3 + [32] * 3 + [64] * 3


def test_mobilenet_v2_attention_after_projection_bn_of_each_inverted_residual():
    model = build_model("mobilenet-v2", "eca", num_classes=1000, k="official")
    blocks = [m for m in model.features if isinstance(m, torchvision.models.mobilenetv2.InvertedResidual)]
    assert len(blocks) == 17 and len(attention_modules(model)) == 17
    for block in blocks:
        *_, bn, attn = block.conv
        assert isinstance(bn, nn.BatchNorm2d) and is_attention(attn)
        assert attn.channels == bn.num_features == block.out_channels
        assert attn.k == (1 if attn.channels < 96 else 3)
    assert model.kernel_sizes == [1, 1, 1, 1, 3, 3, 3]
    assert n_params(model) == n_params(torchvision.models.mobilenet_v2(num_classes=1000)) + 10 * 1 + 7 * 3


class Recorder(nn.Module):
    """Stands in for the attention: records its input and halves it."""

    def forward(self, x):
        self.seen = x.clone()
        return 0.5 * x


@pytest.mark.parametrize("backbone, block_path, last_bn", [
    ("resnet-50", "layer2.0", "bn3"),  # bottleneck with a downsampling shortcut
    ("resnet-50", "layer1.1", "bn3"),  # bottleneck with an identity shortcut
    ("resnet-18", "layer3.0", "bn2"),
    ("resnet-20", "layer2.0", "bn2"),  # option-A shortcut
])
def test_attention_sees_last_bn_output_and_runs_before_the_addition(backbone, block_path, last_bn):
    block = copy.deepcopy(shared_model(backbone, "eca").get_submodule(block_path)).eval()
    block.attn = Recorder()
    bn_out = {}
    getattr(block, last_bn).register_forward_hook(lambda m, i, out: bn_out.setdefault("y", out.clone()))
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        out = block(x)
        shortcut = x if block.downsample is None else block.downsample(x)
    torch.testing.assert_close(block.attn.seen, bn_out["y"])
    torch.testing.assert_close(out, torch.relu(0.5 * bn_out["y"] + shortcut))


@pytest.mark.parametrize("backbone", ["resnet-20", "resnet-8", "resnet-18", "resnet-50", "mobilenet-v2"])
def test_stage_channels_and_kernel_sizes_are_the_modules(backbone):
    model = shared_model(backbone, "eca", k="adaptive")
    per_stage = list(dict.fromkeys((m.channels, m.k) for m in attention_modules(model)))  # C differs by stage
    assert [c for c, _ in per_stage] == stage_channels(backbone)
    assert [k for _, k in per_stage] == model.kernel_sizes


def test_width_sets_base_width_and_width_mult():
    assert stage_channels("resnet-20", width=32) == [32, 64, 128]
    model = build_model("resnet-14", "eca", width=8)
    assert [m.channels for m in attention_modules(model)] == [8, 8, 16, 16, 32, 32]
    assert stage_channels("mobilenet-v2", width=0.5) == [8, 16, 16, 32, 48, 80, 160]
    with pytest.raises(ValueError, match="width"):
        build_model("resnet-50", width=32)


# --- shapes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone, attention, in_channels, size", [
    ("resnet-20", "none", 3, 32), ("resnet-20", "eca", 3, 32), ("resnet-20", "eca", 1, 28),
    ("resnet-8", "se", 1, 28), ("cifar-resnet-50", "none", 3, 16),
    ("resnet-18", "eca", 1, 28), ("mobilenet-v2", "eca", 1, 28),
])
def test_output_shape(backbone, attention, in_channels, size):
    kwargs = {"r": 4} if attention == "se" else {}
    model = build_model(backbone, attention, num_classes=7, in_channels=in_channels, **kwargs)
    assert model(torch.randn(2, in_channels, size, size)).shape == (2, 7)


def test_cifar_depths():
    assert "resnet-110" in backbone_names() and "resnet-50" in backbone_names()
    assert len(build_model("resnet-110").layer1) == 18
    assert len(build_model("cifar-resnet-50").layer3) == 8  # resnet-50 is the ImageNet one
    with pytest.raises(ValueError, match="unknown backbone 'resnet-21'"):
        build_model("resnet-21")


# --- errors ----------------------------------------------------------------------------------------

def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backbone 'vgg-16'") as info:
        build_model("vgg-16")
    for name in ("resnet-20", "resnet-50", "mobilenet-v2", "6n+2"):
        assert name in str(info.value)


@pytest.mark.parametrize("backbone, k, stages", [
    ("resnet-50", [3, 5, 5], 4), ("resnet-20", [3, 5, 5, 7], 3), ("mobilenet-v2", "3557", 7),
])
def test_per_stage_k_of_wrong_length(backbone, k, stages):
    with pytest.raises(ValueError, match=rf"k=.*{stages} stages"):
        build_model(backbone, "eca", k=k)


@pytest.mark.parametrize("attention", ["se", "none", "se-var2"])
def test_per_stage_k_only_for_the_eca_family(attention):
    with pytest.raises(ValueError, match="ECA family"):
        build_model("resnet-20", attention, k=[3, 3, 3])


def test_attention_argument_errors_propagate():
    with pytest.raises(ValueError, match="r=7"):
        build_model("resnet-20", "se", r=7)
    with pytest.raises(ValueError, match="does not take k"):
        build_model("resnet-20", "se", k=3)
    with pytest.raises(ValueError, match="k must be an odd"):
        build_model("resnet-50", "eca", k=[3, 4, 5, 7])
    with pytest.raises(ValueError, match="official"):
        build_model("resnet-20", "eca", k="official")
    with pytest.raises(ValueError, match="unknown attention"):
        build_model("resnet-20", "sk")  # timm's selective kernel: out of scope (it replaces the conv)


# --- summary ---------------------------------------------------------------------------------------

def test_summarize_restores_modes_and_matches_memory_formats():
    model = build_model("resnet-20", "eca").train()
    model.fc.eval()
    summary = summarize(model, (3, 32, 32))
    assert model.training and model.layer1.training and not model.fc.training
    assert summary["flops"] > 0 and summary["macs"] == summary["flops"] // 2
    assert summary["backbone"] == "resnet-20" and summary["attention"] == "eca"
    assert summary["kernel_sizes"] == [3, 3, 3] and summary["attention_modules"] == 9
    channels_last = summarize(model.to(memory_format=torch.channels_last), (1, 3, 32, 32))
    assert channels_last["flops"] == summary["flops"]
    with pytest.raises(ValueError, match="input_size"):
        summarize(model, (2, 3, 32, 32))


def test_resnet50_macs_at_224():
    vanilla = summarize(shared_model("resnet-50"), (3, 224, 224))
    # FlopCounterMode (torch 2.x): 8,178,368,512 FLOPs = 4.089 G multiply-adds, torchvision's "4.09 GFLOPS".
    assert vanilla["macs"] == pytest.approx(4.09e9, rel=2e-3)


def test_attention_adds_very_few_flops():
    flops = {attention: summarize(shared_model("resnet-50", attention, **kwargs), (3, 64, 64))["flops"]
             for attention, kwargs in (("none", {}), ("eca", {"k": "adaptive"}), ("se", {}))}
    # FlopCounterMode counts convolutions and matrix products only: SE's two linear layers show up,
    # ECA's k-tap product over channels (k C multiply-adds per block) may be counted or not,
    # depending on whether attention.py computes it with conv1d or with elementwise ops.
    assert 0 <= flops["eca"] - flops["none"] < 1e-3 * flops["none"]
    assert 0 < flops["se"] - flops["none"] < 1e-2 * flops["none"]


@pytest.mark.parametrize("backbone, size", [("resnet-20", 16), ("resnet-50", 16), ("mobilenet-v2", 16)])
def test_channels_last_gives_the_same_output(backbone, size):
    torch.manual_seed(0)
    model = build_model(backbone, "eca", k="adaptive").double().eval()
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected)


def test_channels_last_survives_the_option_a_shortcut():
    model = build_model("resnet-20", "eca").to(memory_format=torch.channels_last)
    seen = []
    for block in (model.layer2[0], model.layer3[0]):
        block.register_forward_hook(lambda m, i, out: seen.append(out))
    model(torch.randn(2, 3, 16, 16).to(memory_format=torch.channels_last))
    assert all(out.is_contiguous(memory_format=torch.channels_last) for out in seen)


def test_gradients_reach_the_attention():
    model = build_model("resnet-8", "eca", num_classes=3)
    model(torch.randn(4, 3, 16, 16)).logsumexp(1).sum().backward()
    for attn in attention_modules(model):
        assert attn.conv.weight.grad is not None and torch.isfinite(attn.conv.weight.grad).all()
