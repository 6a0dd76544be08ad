"""``facegcn reconstruct``: outputs, exit codes and messages for good and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facegcn_lib.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from facegcn_lib.data.images import load_image
from facegcn_lib.mesh.io import read_obj, read_ply
from tests.tiny_reconstructor import (
    NO_FACE,
    PHOTO,
    TINY_CONFIG,
    save_tiny_checkpoint,
    shifted_frames,
    write_video,
)

pytestmark = pytest.mark.usefixtures("one_thread")




def run(*args: str | Path) -> int:
    return main(["reconstruct", *map(str, args), "--quiet"])


def test_a_photo_writes_every_file(checkpoint: Path, data_root: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(data_root / PHOTO, "--out", out, "--checkpoint", checkpoint) == EXIT_OK
    stem = Path(PHOTO).stem
    for suffix in (".obj", ".ply", "_lmks68.json", "_pose.json", "_overlay.png", "_depth.png"):
        assert (out / f"{stem}_face00{suffix}").is_file(), suffix
    assert (out / f"{stem}_overlay.png").is_file()
    summary = json.loads((out / f"{stem}_faces.json").read_text())
    assert len(summary["faces"]) == 1 and {"yaw", "pitch", "roll", "box"} <= set(summary["faces"][0])
    obj = read_obj(out / f"{stem}_face00.obj")
    verts, faces, colors = read_ply(out / f"{stem}_face00.ply")
    assert obj.verts.shape == verts.shape and colors is not None
    np.testing.assert_array_equal(obj.faces, faces)
    assert "1 face(s)" in capsys.readouterr().out


def test_an_ensemble_of_checkpoints(checkpoint: Path, data_root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import replace

    other = save_tiny_checkpoint(tmp_path, seed=1)
    out = tmp_path / "out"
    assert run(data_root / PHOTO, "--out", out, "--checkpoint", checkpoint,
               "--checkpoint", other) == EXIT_OK
    assert (out / f"{Path(PHOTO).stem}_face00.obj").is_file()
    assert "1 face(s)" in capsys.readouterr().out
    bigger = replace(TINY_CONFIG, encoder=replace(TINY_CONFIG.encoder, image_size=96))
    odd = save_tiny_checkpoint(tmp_path / "odd", seed=2, config=bigger)
    assert run(data_root / PHOTO, "--out", tmp_path / "odd_out", "--checkpoint", checkpoint,
               "--checkpoint", odd) == EXIT_FAILURE
    assert "an ensemble needs models of one input size" in capsys.readouterr().err
    assert not (tmp_path / "odd_out").exists()


def test_no_face_exits_1_and_says_so(checkpoint: Path, data_root: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(data_root / NO_FACE, "--out", tmp_path, "--checkpoint", checkpoint) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "no face found in" in err and "dogs.jpg" in err and "no face was reconstructed" in err
    assert not list(tmp_path.glob("dogs*"))


def test_a_folder_with_a_corrupt_file_goes_on(checkpoint: Path, data_root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(data_root / PHOTO, folder / "a_face.jpg")
    shutil.copy(data_root / NO_FACE, folder / "b_dogs.jpg")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (folder / "d_notes.txt").write_text("not an image")
    gray = load_image(data_root / PHOTO).mean(axis=2).astype(np.uint8)
    from PIL import Image

    Image.fromarray(gray).save(folder / "e_gray.png")
    out = tmp_path / "out"
    assert run(folder, "--out", out, "--checkpoint", checkpoint) == EXIT_OK
    err = capsys.readouterr().err
    assert "c_broken.jpg" in err and "d_notes.txt" in err and "no face found in" in err
    assert (out / "a_face_face00.obj").is_file() and (out / "e_gray_face00.obj").is_file()
    assert not list(out.glob("c_broken*"))


def test_a_video_with_smoothing(checkpoint: Path, data_root: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", shifted_frames(load_image(data_root / PHOTO), 3))
    out = tmp_path / "out"
    assert run(video, "--out", out, "--checkpoint", checkpoint, "--smooth") == EXIT_OK
    assert (out / "clip_overlay.mp4").is_file()
    assert len(list((out / "clip").glob("frame*_face00.ply"))) == 3


def test_usage_errors_exit_2(checkpoint: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "nowhere.jpg", "--checkpoint", checkpoint) == EXIT_USAGE
    assert "nowhere.jpg" in capsys.readouterr().err
    assert run(tmp_path, "--smooth", "kalman", "--checkpoint", checkpoint) == EXIT_USAGE
    assert "kalman" in capsys.readouterr().err
    assert run(tmp_path, "--crop-shift", "0.5", "--checkpoint", checkpoint) == EXIT_USAGE
    assert "crop_shift" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct"])
    assert exc.value.code == EXIT_USAGE


def test_missing_model_says_how_to_get_one(data_root: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("facegcn_lib.pipeline.default_checkpoint_path",
                        lambda: tmp_path / "facegcn_cpu.pt")
    assert run(data_root / PHOTO, "--out", tmp_path) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "pretrained model is not installed" in err and "--checkpoint" in err
    assert run(data_root / PHOTO, "--out", tmp_path, "--model", "triple") == EXIT_FAILURE
    assert "no pretrained model 'triple'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(data_root / PHOTO, "--model", "pair", "--checkpoint", tmp_path / "x.pt")
    assert exc.value.code == EXIT_USAGE
    assert "not allowed with argument --model" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert run(data_root / PHOTO, "--out", tmp_path, "--checkpoint", bad) == EXIT_FAILURE
    assert "bad.pt" in capsys.readouterr().err


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct", "--help"])
    assert exc.value.code == EXIT_OK
    out = capsys.readouterr().out
    assert "exit codes" in out and "--smooth" in out and "--checkpoint" in out
