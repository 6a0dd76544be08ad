"""Tests of the image encoders: shapes, normalisation, ImageNet weights from a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facegcn_lib.config import ENCODER_ARCHS, ConfigError, EncoderConfig, ModelConfig, from_dict
from facegcn_lib.nn.encoders import EncoderWeightsError, ImageEncoder
from facegcn_lib.nn.model import count_parameters
from facegcn_lib.nn.pooling import MomentPool

#: Trainable parameters of each encoder with a 256-d code (backbone + linear head), as
#: documented in chapter 4.
PARAMS_256 = {"resnet50": 24_032_576, "resnet18": 11_307_840,
              "mobilenet_v3_large": 4_529_968, "mobilenet_v3_small": 1_780_256}


@pytest.mark.parametrize("arch", ENCODER_ARCHS)
def test_shapes_and_parameter_counts(arch: str) -> None:
    enc = ImageEncoder(EncoderConfig(arch=arch, code_dim=256, image_size=32)).eval()
    with torch.no_grad():
        code = enc(torch.rand(1, 3, 32, 32))
    assert code.shape == (1, 256)
    assert count_parameters(enc) == PARAMS_256[arch]


def test_batched_equals_per_sample() -> None:
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(arch="mobilenet_v3_small", code_dim=8, image_size=32)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), torch.cat([enc(x[i:i + 1]) for i in range(2)]),
                                   atol=1e-5, rtol=1e-5)


def test_imagenet_normalisation_is_inside() -> None:
    enc = ImageEncoder(EncoderConfig(arch="mobilenet_v3_small", code_dim=8, image_size=32)).eval()
    grey = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    calls: list[torch.Tensor] = []
    enc.backbone.register_forward_pre_hook(lambda _m, args: calls.append(args[0]))
    enc(grey)
    torch.testing.assert_close(calls[0], torch.zeros(1, 3, 32, 32))


def test_rejects_non_rgb_input() -> None:
    enc = ImageEncoder(EncoderConfig(arch="resnet18", code_dim=8))
    with pytest.raises(ValueError, match="RGB"):
        enc(torch.rand(1, 1, 32, 32))


def test_unknown_arch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="arch"):
        EncoderConfig(arch="vgg16")


def test_loads_imagenet_weights_from_a_file(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(3)
    donor = resnet18()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(donor.state_dict(), path)
    enc = ImageEncoder(EncoderConfig(arch="resnet18", code_dim=8, imagenet_weights=str(path)))
    torch.testing.assert_close(enc.backbone.conv1.weight, donor.conv1.weight)
    torch.testing.assert_close(enc.backbone.layer4[1].bn2.running_var, donor.layer4[1].bn2.running_var)
    assert enc.head.out_features == 8


def test_missing_or_wrong_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EncoderWeightsError, match="train from scratch"):
        ImageEncoder(EncoderConfig(arch="resnet18", imagenet_weights=str(tmp_path / "nope.pth")))
    from torchvision.models import mobilenet_v3_small

    path = tmp_path / "mnet.pth"
    torch.save(mobilenet_v3_small().state_dict(), path)
    with pytest.raises(EncoderWeightsError, match="not a torchvision resnet18"):
        ImageEncoder(EncoderConfig(arch="resnet18", imagenet_weights=str(path)))


def test_no_weights_loaded_when_asked_not_to(tmp_path: Path) -> None:
    cfg = EncoderConfig(arch="resnet18", imagenet_weights=str(tmp_path / "absent.pth"))
    ImageEncoder(cfg, load_weights=False)  # a checkpoint will overwrite every weight


#: Trainable parameters with ``pooling="moments"`` (256-d code): a ResNet's head reads three
#: times the width; a MobileNet's first classifier layer does.
PARAMS_256_MOMENTS = {"resnet18": 11_307_840 + 2 * 512 * 256,
                      "mobilenet_v3_large": 4_529_968 + 2 * 960 * 1280}


@pytest.mark.parametrize("arch", sorted(PARAMS_256_MOMENTS))
def test_moment_pooling_shapes_and_parameter_counts(arch: str) -> None:
    enc = ImageEncoder(EncoderConfig(arch=arch, code_dim=256, image_size=64, pooling="moments")).eval()
    assert isinstance(enc.backbone.avgpool, MomentPool)
    with torch.no_grad():
        code = enc(torch.rand(2, 3, 64, 64))
    assert code.shape == (2, 256)
    assert count_parameters(enc) == PARAMS_256_MOMENTS[arch]


def test_moment_pooling_reads_where_the_face_is() -> None:
    """Global averaging cannot tell a feature map from its mirror image; moments can."""
    enc = ImageEncoder(EncoderConfig(arch="mobilenet_v3_small", code_dim=8, image_size=32,
                                     pooling="moments")).eval()
    f = torch.rand(1, 576, 2, 2)
    pool = enc.backbone.avgpool
    mean_pool = torch.nn.AdaptiveAvgPool2d(1)
    torch.testing.assert_close(mean_pool(f), mean_pool(f.flip(3)))
    assert not torch.allclose(pool(f), pool(f.flip(3)))


def test_pooling_is_checked_and_old_configs_read_as_mean() -> None:
    with pytest.raises(ConfigError, match="pooling"):
        EncoderConfig(pooling="max")
    old = from_dict(ModelConfig, {"encoder": {"arch": "resnet18", "code_dim": 8}})
    assert old.encoder.pooling == "mean"


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "resnet18"])
def test_imagenet_weights_load_under_moment_pooling(tmp_path: Path, arch: str) -> None:
    """Every ImageNet weight that still fits is loaded; the widened layer keeps its own."""
    from torchvision import models

    torch.manual_seed(4)
    donor = getattr(models, arch)()
    path = tmp_path / f"{arch}.pth"
    torch.save(donor.state_dict(), path)
    enc = ImageEncoder(EncoderConfig(arch=arch, code_dim=8, imagenet_weights=str(path),
                                     pooling="moments"))
    first_conv = "features.0.0.weight" if arch.startswith("mobilenet") else "conv1.weight"
    torch.testing.assert_close(enc.backbone.state_dict()[first_conv], donor.state_dict()[first_conv])
    if arch.startswith("mobilenet"):
        assert enc.backbone.classifier[0].in_features == 3 * donor.classifier[0].in_features
