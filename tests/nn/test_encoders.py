"""Tests of the image encoders: shapes, normalisation, ImageNet weights from a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facegcn_lib.config import ENCODER_ARCHS, ConfigError, EncoderConfig
from facegcn_lib.nn.encoders import EncoderWeightsError, ImageEncoder
from facegcn_lib.nn.model import count_parameters

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
