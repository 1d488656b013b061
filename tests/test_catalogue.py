"""The catalogue (names, arguments, channel geometry without torch) agrees with the modules it names,
and the commands that only read it (``list``, ``show``, ``--help``, ``--version``) import no torch."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import torch
import torchvision
from torchvision.models._utils import _make_divisible
from typer.testing import CliRunner

from ecasweep.models import catalogue, shapes
from ecasweep.models.attention import REGISTRY, _KernelAttention
from ecasweep.models.timm_attention import TimmAttention
from ecasweep.models.catalogue import MissingTimmError
from ecasweep.cli.app import app
from ecasweep.errors import SpecError
from ecasweep.spec import load_study


def test_every_variant_takes_exactly_the_catalogued_arguments_and_defaults():
    assert list(REGISTRY) == list(catalogue.VARIANTS)
    for name, cls in REGISTRY.items():
        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name not in ("self", "channels")]
        assert {p.name: p.default for p in params} == catalogue.VARIANTS[name].arguments, name
        assert [p.name for p in params] == catalogue.accepted_arguments(name), name
        assert catalogue.VARIANTS[name].kernel == issubclass(cls, _KernelAttention), name
        assert catalogue.VARIANTS[name].timm == issubclass(cls, TimmAttention), name


def test_make_divisible_is_torchvisions():
    for v in [*range(1, 400), *(c * w for c in (16, 24, 32, 64, 96, 160, 320) for w in (0.1, 0.35, 0.5, 0.75, 1.3, 1.4))]:
        assert shapes.make_divisible(v, 8) == _make_divisible(v, 8), v


@pytest.mark.parametrize("depth", sorted(shapes.IMAGENET_RESNETS))
def test_imagenet_resnet_geometry_is_torchvisions(depth):
    expansion, layers, _ = shapes.IMAGENET_RESNETS[depth]
    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")()
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert tuple(len(stage) for stage in stages) == layers
    assert [stage[-1].conv1.in_channels for stage in stages[1:]] + [model.fc.in_features] == \
        shapes.stage_channels(f"resnet-{depth}")[1:] + [512 * expansion]
    assert type(stages[0][0]).expansion == expansion


def test_mobilenet_v2_settings_are_torchvisions():
    from torchvision.models.mobilenetv2 import InvertedResidual

    with torch.device("meta"):
        model = torchvision.models.mobilenet_v2()
    outs = [block.out_channels for block in model.features if isinstance(block, InvertedResidual)]
    settings = [(c, outs.count(c)) for c in dict.fromkeys(outs)]
    assert tuple(settings) == shapes.MOBILENET_V2_SETTINGS


def test_unknown_backbone_and_attention_are_value_errors_listing_the_names():
    with pytest.raises(ValueError, match="resnet-<6n\\+2>"):
        shapes.stage_channels("resnet-9")
    with pytest.raises(ValueError, match="expected one of: none, se, "):
        catalogue.accepted_arguments("sse")


def test_quick_commands_import_neither_torch_nor_optuna_nor_scipy():
    script = """
import json, sys
from typer.testing import CliRunner
from ecasweep.cli import app
codes = [CliRunner().invoke(app, args).exit_code for args in (["--version"], ["--help"], ["list"],
         ["show", "kernel-size"], ["show", "reduction", "--set", "seeds=3"], ["show", "table2", "--json"])]
heavy = sorted(m for m in ("torch", "torchvision", "optuna", "scipy", "timm") if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0] * 6, "heavy": []}


def _study(tmp_path, arm: str) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(f'layout = "table2"\nbackbones = ["resnet-8"]\n[[arms]]\nattention = "none"\n[[arms]]\n{arm}\n')
    return str(path)


def test_only_what_cannot_be_wrong_skips_the_model_check(tmp_path):
    # groups = 5 divides no stage of resnet-8 (16/32/64 channels): only the module knows that.
    path = _study(tmp_path, 'attention = "se-gc"\ngroups = 5')
    assert [arm.id for arm in load_study(path, check_models=False).arms] == ["none", "se-gc(groups=5)"]
    for check in (True, None):  # None: a user's file is always checked
        with pytest.raises(SpecError, match="groups=5 must divide the channel count C=16"):
            load_study(path, check_models=check)
    runner = CliRunner()
    result = runner.invoke(app, ["show", path])
    assert result.exit_code == 2 and "groups=5 must divide" in result.output, result.output
    # A shipped study is checked by the tests; an override of its backbones or model is not.
    assert runner.invoke(app, ["show", "kernel-size", "--set", "seeds=5"]).exit_code == 0
    result = runner.invoke(app, ["show", "kernel-size", "--set", "model.width=8"])
    assert result.exit_code == 2 and "se(r=16)" in result.output and "C=8" in result.output, result.output


@pytest.mark.parametrize("profile", ["quick", "cifar", "imagenet"])
def test_every_shipped_study_passes_the_model_check_it_skips_in_show(profile):
    from ecasweep.spec import BUILTIN_STUDIES, study_paths

    shipped = [name for name, path in study_paths().items() if path.parent == BUILTIN_STUDIES]
    assert {"kernel-size", "table2", "methods"} <= set(shipped)
    for name in shipped:
        try:
            checked = load_study(name, profile, check_models=True)
        except MissingTimmError:  # methods compares timm's modules; without timm neither path loads it
            with pytest.raises(MissingTimmError):
                load_study(name, profile, check_models=None)
            continue
        assert checked.to_dict() == load_study(name, profile, check_models=None).to_dict(), name
