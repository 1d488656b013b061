"""timm's attention modules through ecasweep's registry: the same modules as timm's own, the same
outputs, placed where ecasweep's variants go, arguments validated, a clear error without timm.

Channel counts here (24, 40, 48, 72) are ones the other attention tests do not use.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision
from torch import nn

from ecasweep.models.attention import TIMM_NAMES, accepted_arguments, create_attention, is_attention
from ecasweep.models.timm_attention import INSTALL_HINT, OUT_OF_SCOPE, MissingTimmError, TimmAttention
from ecasweep.models.backbones import build_model, summarize

timm_layers = pytest.importorskip("timm.layers", reason=f"timm is not installed ({INSTALL_HINT})")

# (our name, our kwargs, timm's create_attn name, timm's kwargs): the same module twice
SAME_AS_TIMM = [
    ("cbam", {}, "cbam", {}),
    ("cbam", {"r": 4, "spatial_k": 3}, "cbam", {"rd_ratio": 1 / 4, "spatial_kernel_size": 3}),
    ("lcbam", {}, "lcbam", {}),
    ("lcbam", {"r": 8, "spatial_k": 5}, "lcbam", {"rd_ratio": 1 / 8, "spatial_kernel_size": 5}),
    ("ge-theta-minus", {}, "ge", {"use_mlp": False}),
    ("ge-theta-minus", {"extent": 4}, "ge", {"extent": 4, "use_mlp": False}),
    ("gc", {}, "gc", {}),
    ("gc", {"r": 16}, "gc", {"rd_ratio": 1 / 16}),
    ("gca", {}, "gca", {}),
    ("gca", {"r": 4}, "gca", {"rd_ratio": 1 / 4}),
    ("ese", {}, "ese", {}),
    ("nl", {}, "nl", {}),
    ("nl", {"r": 2}, "nl", {"rd_ratio": 1 / 2}),
]
CHANNELS = (24, 40, 72)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def timm_module(name: str, channels: int, **kwargs) -> nn.Module:
    return timm_layers.create_attn(name, channels, **kwargs)


def test_every_buildable_timm_variant_is_covered():
    unbuildable = {"ge-theta", "ge-theta-plus"}  # see test_gather_excite_with_parameters
    assert {name for name, *_ in SAME_AS_TIMM} == TIMM_NAMES - unbuildable


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name, kwargs, timm_name, timm_kwargs", SAME_AS_TIMM)
def test_parameter_count_is_timms(name, kwargs, timm_name, timm_kwargs, channels):
    ours = create_attention(name, channels, **kwargs)
    assert n_params(ours) == n_params(timm_module(timm_name, channels, **timm_kwargs))
    assert [type(m).__name__ for m in ours.module.modules()] == \
        [type(m).__name__ for m in timm_module(timm_name, channels, **timm_kwargs).modules()]


def test_cbam_parameter_count_by_hand():
    # channel MLP C -> C/r -> C without bias, spatial 7x7 conv over [mean, max] without bias, its BatchNorm
    assert n_params(create_attention("cbam", 48)) == 2 * 48 * 3 + 2 * 7 * 7 + 2
    assert n_params(create_attention("cbam", 48, r=4, spatial_k=3)) == 2 * 48 * 12 + 2 * 3 * 3 + 2


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name, kwargs, timm_name, timm_kwargs", SAME_AS_TIMM)
def test_output_equals_timms_with_shared_weights(name, kwargs, timm_name, timm_kwargs, train):
    torch.manual_seed(0)
    ours = create_attention(name, 40, **kwargs)
    with torch.no_grad():  # non-trivial weights everywhere (some inits are zero)
        for p in ours.parameters():
            p.uniform_(-1.0, 1.0)
    reference = timm_module(timm_name, 40, **timm_kwargs)
    reference.load_state_dict(ours.module.state_dict())
    ours.train(train), reference.train(train)
    x = torch.randn(3, 40, 9, 7)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize("name, kwargs", [("ge-theta", {}), ("ge-theta", {"extent": 4}),
                                          ("ge-theta-plus", {"r": 8})])
def test_gather_excite_with_parameters(name, kwargs):
    """Built by timm's GatherExcite when timm can build it; else one clear error saying so."""
    timm_kwargs = {"extent": kwargs.get("extent", 2), "extra_params": True, "use_mlp": name == "ge-theta-plus"}
    if "r" in kwargs:
        timm_kwargs["rd_ratio"] = 1 / kwargs["r"]
    try:
        reference = timm_layers.GatherExcite(24, **timm_kwargs)
    except TypeError:  # timm 1.0.31 cannot build it
        with pytest.raises(ValueError, match="GatherExcite.*cannot be built"):
            create_attention(name, 24, **kwargs)
        return
    assert n_params(create_attention(name, 24, **kwargs)) == n_params(reference)


# --- placement -------------------------------------------------------------------------------------

def test_resnet50_with_cbam_is_torchvisions_plus_16_cbam_modules():
    model = build_model("resnet-50", "cbam", num_classes=1000)
    per_stage = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
    cbam = sum(n * n_params(timm_module("cbam", c)) for n, c in per_stage)
    assert n_params(model) == n_params(torchvision.models.resnet50()) + cbam
    blocks = [m for m in model.modules() if hasattr(m, "bn3")]
    assert len(blocks) == 16 and all(isinstance(b.attn, TimmAttention) for b in blocks)
    assert [b.attn.channels for b in blocks] == [c for n, c in per_stage for _ in range(n)]
    assert summarize(model, (3, 32, 32))["attention_params"] == cbam


@pytest.mark.parametrize("backbone, path, last_bn", [
    ("resnet-8", "layer2.0", "bn2"),  # CIFAR ResNet, option-A shortcut
    ("resnet-18", "layer3.0", "bn2"),  # torchvision BasicBlock with a downsampling shortcut
])
def test_timm_module_sees_the_last_bn_output_before_the_addition(backbone, path, last_bn):
    block = build_model(backbone, "gc").get_submodule(path).eval()
    seen = {}
    getattr(block, last_bn).register_forward_hook(lambda m, i, out: seen.update(bn=out.clone()))
    block.attn.register_forward_hook(lambda m, i, out: seen.update(attn=(i[0].clone(), out.clone())))
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        out = block(x)
        shortcut = x if block.downsample is None else block.downsample(x)
    attn_in, attn_out = seen["attn"]
    assert torch.equal(attn_in, seen["bn"])
    torch.testing.assert_close(out, torch.relu(attn_out + shortcut))


def test_mobilenet_v2_timm_module_after_the_projection_bn():
    model = build_model("mobilenet-v2", "cbam", width=0.25)
    blocks = [m for m in model.features if isinstance(m, torchvision.models.mobilenetv2.InvertedResidual)]
    assert len(blocks) == 17
    for block in blocks:
        *_, bn, attn = block.conv
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(attn, TimmAttention)
        assert attn.channels == bn.num_features == block.out_channels


@pytest.mark.parametrize("name", ["cbam", "ge-theta-minus", "gc", "ese"])
def test_cifar_resnet_trains_a_step_channels_last(name):
    model = build_model("resnet-8", name, in_channels=1).to(memory_format=torch.channels_last)
    assert model.kernel_sizes is None and model.attention == name
    assert [m.channels for m in model.modules() if is_attention(m)] == [16, 32, 64]
    x = torch.randn(4, 1, 28, 28).to(memory_format=torch.channels_last)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for m in model.modules() if isinstance(m, TimmAttention)
               for p in m.parameters())


# --- arguments and errors --------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, message", [
    ("cbam", {"r": 0}, "r must be a positive integer"),
    ("cbam", {"spatial_k": 4}, "spatial_k must be an odd integer"),
    ("lcbam", {"r": 2.5}, "r must be a positive integer"),
    ("ge-theta-minus", {"extent": 3}, "extent must be 0 \\(global\\) or a power of two"),
    ("ge-theta", {"extent": 0}, "needs the feature map's size"),
    ("gc", {"r": True}, "r must be a positive integer"),
    ("cbam", {"k": 3}, "does not take k"),
    ("ese", {"r": 4}, "does not take r"),
])
def test_invalid_arguments(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_attention(name, 24, **kwargs)


def test_accepted_arguments():
    assert accepted_arguments("cbam") == ["r", "spatial_k"]
    assert accepted_arguments("ge-theta-minus") == ["extent"]
    assert accepted_arguments("ese") == []


def test_out_of_scope_modules_are_not_registered():
    assert set(OUT_OF_SCOPE) == {"sk", "splat", "lambda", "halo", "bottleneck"}
    assert not set(OUT_OF_SCOPE) & TIMM_NAMES


def test_missing_timm_is_one_error_naming_the_install_command(monkeypatch):
    for module in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
        monkeypatch.setitem(sys.modules, module, None)  # a None entry makes the import fail
    with pytest.raises(MissingTimmError, match="pip install 'ecasweep\\[timm\\]'"):
        create_attention("cbam", 16)
    with pytest.raises(ValueError, match="spatial_k"):  # arguments are checked first, timm or not
        create_attention("cbam", 16, spatial_k=2)
