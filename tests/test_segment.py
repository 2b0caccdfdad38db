"""segment.py: an mp4 in, a palette PNG for every frame out; the recorded size by default; bad input."""

import numpy as np
import pytest
import torch

from stm import STM
from stm.cli import run
from stm.data.io import read_mask, write_mask
from stm.data.synthetic import SyntheticSpec, render_video
from stm.data.video_file import VideoFileFrames, write_video
from stm.model.checkpoint import save_checkpoint
from stm.segment import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny frames (see tests/conftest.py)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    base = tmp_path_factory.mktemp("segment")
    frames, labels = render_video(np.random.default_rng(5), SyntheticSpec(48, 80, 12, 12, 2, 2))
    write_video(base / "clip.mp4", frames, fps=10)
    write_mask(base / "first.png", labels[0])
    (base / "later").mkdir()
    write_mask(base / "later" / "00004.png", labels[4])
    torch.manual_seed(0)
    model = STM("semi", "resnet18", decoder_channels=32).eval()
    save_checkpoint(base / "native.pth", model)
    save_checkpoint(base / "small.pth", model, size=24)
    torch.manual_seed(0)
    save_checkpoint(base / "interactive.pth", STM("interactive", "resnet18", decoder_channels=32))
    return base, labels


def outputs(folder, count=12):
    return np.stack([read_mask(folder / f"{i:05d}.png") for i in range(count)])


def test_an_mp4_in_every_frame_out(workdir, tmp_path, capsys):
    base, labels = workdir
    out = tmp_path / "out"
    main(["--video", str(base / "clip.mp4"), "--masks", str(base / "first.png"), "--output", str(out),
          "--weights", str(base / "native.pth"), "--overlay", "--max-memory-frames", "3"])  # fmt: skip
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(12)]
    masks = outputs(out)
    assert masks.shape == (12, 48, 80)
    np.testing.assert_array_equal(masks[0], labels[0])
    overlay = VideoFileFrames(out / "overlay.mp4")
    assert len(overlay) == 12 and overlay.fps == 10  # at the clip's own rate, not a default
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("12 frames in ") and "FPS" in line and "peak memory" in line


def test_masks_named_by_frame_propagate_both_ways(workdir, tmp_path):
    base, labels = workdir
    out = tmp_path / "out"
    main(["--video", str(base / "clip.mp4"), "--masks", str(base / "later"), "--output", str(out),
          "--weights", str(base / "native.pth")])  # fmt: skip
    masks = outputs(out)
    np.testing.assert_array_equal(masks[4], labels[4])
    assert all((masks[i] > 0).any() for i in range(4))  # frames before the first mask came from backward


def test_the_recorded_size_is_the_default(workdir, tmp_path):
    base, _ = workdir
    common = ["--video", str(base / "clip.mp4"), "--masks", str(base / "first.png"), "--weights"]
    main([*common, str(base / "small.pth"), "--output", str(tmp_path / "default")])
    main([*common, str(base / "native.pth"), "--output", str(tmp_path / "explicit"), "--size", "24"])
    main([*common, str(base / "small.pth"), "--output", str(tmp_path / "native"), "--size", "native"])
    np.testing.assert_array_equal(outputs(tmp_path / "default"), outputs(tmp_path / "explicit"))
    assert (outputs(tmp_path / "default") != outputs(tmp_path / "native")).any()


def bad_run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(main, argv)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ")
    return error[0]


def test_bad_input_is_one_line_and_loses_nothing(workdir, tmp_path, capsys):
    base, labels = workdir
    out = tmp_path / "out"
    write_mask(out / "00000.png", np.full((48, 80), 3, dtype=np.uint8))  # a previous run's file
    weights = ["--weights", str(base / "native.pth"), "--output", str(out)]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    assert f"{garbage}: unreadable video" in bad_run(["--video", str(garbage), "--masks", str(base / "first.png"),
                                                      *weights], capsys)  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert "empty: no frames" in bad_run(["--video", str(tmp_path / "empty"), "--masks", str(base / "first.png"),
                                          *weights], capsys)  # fmt: skip
    video = ["--video", str(base / "clip.mp4")]
    small = tmp_path / "small.png"
    write_mask(small, labels[0][:24])
    assert f"{small}: mask is 80x24 but the video is 80x48" in bad_run([*video, "--masks", str(small), *weights],
                                                                        capsys)  # fmt: skip
    blank = tmp_path / "blank.png"
    write_mask(blank, np.zeros((48, 80), dtype=np.uint8))
    assert f"{blank}: mask has no object" in bad_run([*video, "--masks", str(blank), *weights], capsys)
    beyond = tmp_path / "beyond"
    write_mask(beyond / "00000.png", labels[0])
    write_mask(beyond / "00012.png", labels[0])
    assert "00012.png: frame 12 is beyond the video (12 frames" in bad_run([*video, "--masks", str(beyond), *weights],
                                                                           capsys)  # fmt: skip
    named = tmp_path / "named"
    write_mask(named / "first.png", labels[0])
    assert "first.png: mask files in a folder are named by frame number" in bad_run(
        [*video, "--masks", str(named), *weights], capsys
    )
    interactive = ["--weights", str(base / "interactive.pth"), "--output", str(out)]
    assert "interactive checkpoint" in bad_run([*video, "--masks", str(base / "first.png"), *interactive], capsys)
    assert sorted(p.name for p in out.iterdir()) == ["00000.png"]
    assert (read_mask(out / "00000.png") == 3).all()


def test_a_real_davis_sequence_turned_into_an_mp4(shared_data, workdir, tmp_path):
    from stm.data.frames import FolderFrames

    sequence = shared_data / "davis16-train-sample"
    frames = FolderFrames(sequence / "JPEGImages" / "480p" / "dog-agility")
    write_video(tmp_path / "dog-agility.mp4", (frames[i] for i in range(6)))
    mask = sequence / "Annotations" / "480p" / "dog-agility" / "00000.png"  # 0/255 greyscale: one object
    main(["--video", str(tmp_path / "dog-agility.mp4"), "--masks", str(mask), "--output", str(tmp_path / "out"),
          "--weights", str(workdir[0] / "small.pth")])  # fmt: skip
    masks = outputs(tmp_path / "out", 6)
    assert masks.shape == (6, 480, 854)
    np.testing.assert_array_equal(masks[0], read_mask(mask))
