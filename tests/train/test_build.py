"""The preset glue: datasets in the model's frame, seeded augmentation, a real short run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from facegcn_lib.config import EncoderConfig
from facegcn_lib.nn.model import normalized_to_crop
from facegcn_lib.train.build import (
    FaceTrainingView,
    MissingBasisError,
    SeededAugment,
    build_from_preset,
    export_models,
)
from facegcn_lib.train.trainer import CPU_LANDMARK_WEIGHT, PRESETS, TrainConfigError


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class PixelFaces(torch.utils.data.Dataset):
    """Two 16 x 16 crops with vertices and 2D landmarks in crop pixels."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"image": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=g),
                "vertices": torch.rand(10, 3, generator=g) * 16,
                "landmarks": torch.rand(68, 2, generator=g) * 16}


def test_view_gives_unit_images_and_normalised_vertices() -> None:
    raw, item = PixelFaces()[1], FaceTrainingView(PixelFaces(), 16)[1]
    assert item["image"].dtype == torch.float32
    torch.testing.assert_close(item["image"] * 255, raw["image"].float())
    torch.testing.assert_close(normalized_to_crop(item["verts"], 16), raw["vertices"])
    assert item["lmks68"].shape == (68, 3) and bool((item["lmks68"][:, 2] == 0).all())
    with pytest.raises(TrainConfigError, match="16, 16"):
        FaceTrainingView(PixelFaces(), 32)[0]


class Jitter:
    """A transform drawing from its ``generator`` (like CropAndAugment)."""

    generator: torch.Generator | None = None

    def __call__(self, sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**sample, "shift": torch.rand(2, generator=self.generator)}


def test_seeded_augment_depends_on_the_index_only() -> None:
    aug = SeededAugment(PixelFaces(), Jitter(), seed=5, copies=3)
    assert len(aug) == 6
    first = aug[3]["shift"]
    aug[0], aug[4]  # other draws in between change nothing
    assert torch.equal(aug[3]["shift"], first)
    assert not torch.equal(aug[1]["shift"], first)  # same face, another epoch's augmentation
    assert torch.equal(aug[1]["image"], aug[3]["image"])


def test_300w_lp_without_a_bfm_file_says_what_to_do() -> None:
    with pytest.raises(MissingBasisError, match="--bfm PATH"):
        build_from_preset("cpu", data="300w-lp")
    with pytest.raises(TrainConfigError, match="unknown preset"):
        build_from_preset("gpu")


def test_cpu_preset_trains_on_synthetic_faces_and_exports(data_root: Path, tmp_path: Path) -> None:
    """Three steps of the real model on 64 x 64 synthetic faces, then a model file round trip."""
    from facegcn_lib.train.checkpoint import load_checkpoint

    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    setup = build_from_preset(
        "cpu", model_config=mcfg, train_samples=4, val_samples=4,
        train_overrides={"epochs": 3, "batch_size": 4, "max_minutes": None, "num_workers": 0,
                         "progress": False, "tensorboard": False, "val_batch_size": 4})
    first = setup.train_set[0]
    assert setup.train_set[4]["image"].shape == first["image"].shape == (3, 64, 64)
    assert not torch.equal(setup.train_set[4]["verts"], first["verts"])  # epoch 1: new faces
    result = setup.trainer(tmp_path).fit()
    assert result.steps == 3 and result.best_metric is not None
    paths = export_models(setup, result, tmp_path)
    model, ckpt = load_checkpoint(paths["best"])
    assert ckpt.step == result.best_step
    x = setup.val_set[0]["image"][None]  # type: ignore[index]
    with torch.no_grad():
        torch.testing.assert_close(model(x), setup.model.eval()(x))  # export leaves the best
    assert ckpt.metadata["val_nme"] == pytest.approx(result.best_metric)
    assert ckpt.config == mcfg
    # the preset's loss: the paper's terms plus the 68 reported landmarks' image-plane term
    assert setup.loss.cfg.landmark_weight == CPU_LANDMARK_WEIGHT > 0  # type: ignore[union-attr]
    assert result.train_loss > 0 and setup.run_info["loss_config"]["landmark_weight"] == CPU_LANDMARK_WEIGHT


def test_a_weight_average_is_validated_and_exported_with_the_raw_weights_beside_it(
        data_root: Path, tmp_path: Path) -> None:
    """The real model (sparse graph operators included) with ``ema_decay``: three steps."""
    from facegcn_lib.train.build import LAST_RAW_MODEL
    from facegcn_lib.train.checkpoint import load_checkpoint

    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    setup = build_from_preset(
        "cpu", model_config=mcfg, train_samples=4, val_samples=4,
        train_overrides={"epochs": 3, "batch_size": 4, "max_minutes": None, "num_workers": 0,
                         "progress": False, "tensorboard": False, "val_batch_size": 4,
                         "ema_decay": 0.5})
    trainer = setup.trainer(tmp_path)
    result = trainer.fit()
    assert trainer.ema is not None and trainer.ema.updates == 3
    paths = export_models(setup, result, tmp_path)
    assert paths["last_raw"] == tmp_path / LAST_RAW_MODEL
    x = setup.val_set[0]["image"][None]  # type: ignore[index]
    with torch.no_grad():
        best, ckpt = load_checkpoint(paths["best"])
        raw, raw_ckpt = load_checkpoint(paths["last_raw"])
        torch.testing.assert_close(best(x), trainer.ema.module(x))  # the best is the average
        torch.testing.assert_close(raw(x), setup.model.eval()(x))  # the raw weights beside it
        assert not torch.allclose(best(x), raw(x))
    assert ckpt.metadata["weights"] == "average" and raw_ckpt.metadata["weights"] == "raw"


def test_landmark_weight_override(data_root: Path) -> None:
    """``landmark_weight`` replaces the preset's; 0 is the paper's loss, without landmarks."""
    from facegcn_lib.pipeline import reported_landmarks

    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    kw = {"model_config": mcfg, "train_samples": 2, "val_samples": 2,
          "train_overrides": {"num_workers": 0, "progress": False}}
    paper = build_from_preset("cpu", landmark_weight=0.0, **kw)  # type: ignore[arg-type]
    assert paper.loss.cfg.landmark_weight == 0.0 and len(paper.loss.lmk_tri) == 0  # type: ignore[union-attr]
    heavy = build_from_preset("cpu", landmark_weight=2.5, **kw)  # type: ignore[arg-type]
    assert heavy.loss.cfg.landmark_weight == 2.5  # type: ignore[union-attr]
    expected = reported_landmarks(heavy.model.target)  # type: ignore[union-attr]
    assert heavy.loss.lmk_tri.tolist() == expected.faces.tolist()  # type: ignore[union-attr]
    with pytest.raises(TrainConfigError, match="landmark_weight"):
        build_from_preset("cpu", landmark_weight=-1.0, **kw)  # type: ignore[arg-type]


def test_training_from_a_synthetic_face_cache(data_root: Path, tmp_path: Path) -> None:
    """``synth_cache``: each epoch reads every cached face once, mirrored or re-cropped anew."""
    from facegcn_lib.data.synth import SynthConfig
    from facegcn_lib.data.synth_cache import write_cache

    small = SynthConfig(image_size=64, supersample=1)
    write_cache(tmp_path / "c", 3, small, shard_size=3, workers=1)
    write_cache(tmp_path / "d", 2, small, seed=1, shard_size=2, workers=1)
    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    overrides = {"epochs": 2, "batch_size": 2, "max_minutes": None, "num_workers": 0,
                 "progress": False, "tensorboard": False, "val_batch_size": 2}
    setup = build_from_preset("cpu", model_config=mcfg, val_samples=2, train_overrides=overrides,
                              synth_cache=tmp_path / "c")
    assert len(setup.train_set) == 6 and setup.train_set.epoch_length == 3  # type: ignore[attr-defined]
    a, b = setup.train_set[1], setup.train_set[4]  # one face, two epochs
    both = build_from_preset("cpu", model_config=mcfg, val_samples=2, train_overrides=overrides,
                             synth_cache=[tmp_path / "c", tmp_path / "d"])
    assert both.train_set.epoch_length == 5  # type: ignore[attr-defined]
    torch.testing.assert_close(both.train_set[1]["verts"], a["verts"])  # the same face, same draw
    assert a["image"].shape == (3, 64, 64) and not torch.equal(a["verts"], b["verts"])
    torch.testing.assert_close(setup.train_set[1]["verts"], a["verts"])  # seeded by the index
    with pytest.raises(TrainConfigError, match="--size 128"):
        build_from_preset("cpu", val_samples=2, train_overrides=overrides, synth_cache=tmp_path / "c")
    with pytest.raises(TrainConfigError, match="drop one of the two"):
        build_from_preset("cpu", model_config=mcfg, train_samples=8, synth_cache=tmp_path / "c")
    with pytest.raises(TrainConfigError, match="facegcn data synth"):
        build_from_preset("cpu", model_config=mcfg, val_samples=2, train_overrides=overrides,
                          synth_cache=tmp_path / "missing")
    # --glasses: the same views (targets), glasses drawn on some of the images
    assert setup.run_info["glasses_prob"] == PRESETS["cpu"].glasses_prob == 0.3  # the recipe's
    bare = build_from_preset("cpu", model_config=mcfg, val_samples=2, train_overrides=overrides,
                             synth_cache=tmp_path / "c", glasses=0.0)
    worn = build_from_preset("cpu", model_config=mcfg, val_samples=2, train_overrides=overrides,
                             synth_cache=tmp_path / "c", glasses=1.0)
    assert worn.preset.glasses_prob == 1.0 and worn.run_info["glasses_prob"] == 1.0
    a = bare.train_set[1]
    g = worn.train_set[1]
    torch.testing.assert_close(g["verts"], a["verts"])
    assert not torch.equal(g["image"], a["image"])
    # --loose-hair: likewise, drawn over the glasses; with it off the glasses are as before
    both = build_from_preset("cpu", model_config=mcfg, val_samples=2, train_overrides=overrides,
                             synth_cache=tmp_path / "c", glasses=1.0, loose_hair=1.0)
    assert both.run_info["loose_hair_prob"] == 1.0 and worn.run_info["loose_hair_prob"] == 0.0
    h = both.train_set[1]
    torch.testing.assert_close(h["verts"], a["verts"])
    assert not torch.equal(h["image"], g["image"])


def test_glasses_override(data_root: Path) -> None:
    """``glasses``: on faces rendered on the fly too; a probability; synthetic data only."""
    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    kw = {"model_config": mcfg, "train_samples": 2, "val_samples": 2,
          "train_overrides": {"num_workers": 0, "progress": False, "epochs": 1}}
    plain = build_from_preset("cpu", glasses=0.0, **kw)  # type: ignore[arg-type]
    worn = build_from_preset("cpu", glasses=1.0, **kw)  # type: ignore[arg-type]
    a, b = plain.train_set[0], worn.train_set[0]
    torch.testing.assert_close(b["verts"], a["verts"])  # the same face ...
    assert not torch.equal(b["image"], a["image"])  # ... wearing glasses
    torch.testing.assert_close(worn.val_set[0]["image"], plain.val_set[0]["image"])  # validation as rendered
    with pytest.raises(TrainConfigError, match="probability"):
        build_from_preset("cpu", glasses=1.5, **kw)  # type: ignore[arg-type]
    with pytest.raises(TrainConfigError, match="--data synthetic"):
        build_from_preset("cpu", data="300w-lp", glasses=0.5, bfm="/nonexistent.mat")


def test_loose_hair_override(data_root: Path) -> None:
    """``loose_hair``: on faces rendered on the fly, after the glasses; a probability;
    synthetic data only."""
    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    kw = {"model_config": mcfg, "train_samples": 2, "val_samples": 2,
          "train_overrides": {"num_workers": 0, "progress": False, "epochs": 1}}
    plain = build_from_preset("cpu", glasses=0.0, **kw)  # type: ignore[arg-type]
    worn = build_from_preset("cpu", glasses=1.0, **kw)  # type: ignore[arg-type]
    both = build_from_preset("cpu", glasses=1.0, loose_hair=1.0, **kw)  # type: ignore[arg-type]
    a, b, c = plain.train_set[0], worn.train_set[0], both.train_set[0]
    torch.testing.assert_close(c["verts"], a["verts"])  # the same face ...
    assert not torch.equal(c["image"], b["image"])  # ... with hair over its glasses
    torch.testing.assert_close(both.val_set[0]["image"], plain.val_set[0]["image"])
    with pytest.raises(TrainConfigError, match=r"--loose-hair is a probability"):
        build_from_preset("cpu", loose_hair=-0.1, **kw)  # type: ignore[arg-type]
    with pytest.raises(TrainConfigError, match=r"loose hair.*--data synthetic"):
        build_from_preset("cpu", data="300w-lp", loose_hair=0.5, bfm="/nonexistent.mat")


def test_pooling_override(data_root: Path) -> None:
    """``pooling`` changes the encoder's pooling only; the model still trains and saves."""
    from facegcn_lib.nn.pooling import MomentPool

    mcfg = replace(PRESETS["cpu"].model, encoder=EncoderConfig(arch="resnet18", image_size=64))
    kw = {"model_config": mcfg, "train_samples": 2, "val_samples": 2,
          "train_overrides": {"num_workers": 0, "progress": False, "epochs": 1}}
    setup = build_from_preset("cpu", pooling="moments", **kw)  # type: ignore[arg-type]
    assert setup.preset.model.encoder == replace(mcfg.encoder, pooling="moments")
    assert isinstance(setup.model.encoder.backbone.avgpool, MomentPool)
    with pytest.raises(TrainConfigError, match="pooling"):
        build_from_preset("cpu", pooling="max", **kw)  # type: ignore[arg-type]
