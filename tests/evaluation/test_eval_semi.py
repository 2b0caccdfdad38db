import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from eval_semi import main
from stm.cli import run
from stm.data.io import read_mask, write_mask
from tests.evaluation.conftest import make_davis

FAST = ["--backbone", "resnet18"]


def test_davis_submission_scores_and_overlays(davis_root, tmp_path):
    out = tmp_path / "out"
    main(["--root", str(davis_root), "--output", str(out), *FAST, "--save-scores", "--overlay"])
    for name in ("a", "b"):
        frames = sorted((davis_root / "JPEGImages" / "480p" / name).iterdir())
        pngs = sorted((out / name).glob("*.png"))
        assert [p.stem for p in pngs] == [f.stem for f in frames]
        with Image.open(pngs[1]) as image:
            assert image.mode == "P" and image.size == (96, 64)
            assert image.getpalette()[3:6] == [128, 0, 0]
        truth = read_mask(davis_root / "Annotations" / "480p" / name / "00000.png")
        assert np.array_equal(read_mask(pngs[0]), truth)  # the given frame comes back as given
        probs = np.load(out / "scores" / name / "00003.npz")["probs"]
        assert probs.dtype == np.float16 and probs.shape == (3, 64, 96)
        np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1, atol=2e-3)
        chosen = np.take_along_axis(probs, read_mask(out / name / "00003.png")[None].astype(np.int64), 0)[0]
        assert np.all(chosen >= probs.max(0) - 1e-3)  # the written label is the most probable (float16 ties aside)
        video = cv2.VideoCapture(str(out / "overlays" / f"{name}.mp4"))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    rows = list(csv.reader((out / "global_results-val.csv").open()))
    assert rows[0][:2] == ["J&F-Mean", "J-Mean"] and 0 <= float(rows[1][0]) <= 1
    rows = list(csv.reader((out / "per-sequence_results-val.csv").open()))
    assert [r[0] for r in rows[1:]] == ["a_1", "a_2", "b_1", "b_2"]


def test_progress_in_a_log_is_plain_lines(davis_root, tmp_path, capsys):
    main(["--root", str(davis_root), "--output", str(tmp_path / "out"), *FAST])
    err = capsys.readouterr().err  # not a terminal
    assert "\r" not in err and "a: 5/5 frame" in err and "b: 5/5 frame" in err


def test_rerun_skips_complete_sequences(davis_root, tmp_path, capsys):
    out = tmp_path / "out"
    main(["--root", str(davis_root), "--output", str(out), *FAST, "--sequences", "a,b"])
    stamp = (out / "a" / "00004.png").stat().st_mtime_ns
    (out / "b" / "00002.png").unlink()
    capsys.readouterr()
    main(["--root", str(davis_root), "--output", str(out), *FAST])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "5 frames, 1 of 2 sequences already complete" in line and line.startswith("J&F ")
    assert (out / "a" / "00004.png").stat().st_mtime_ns == stamp
    assert (out / "b" / "00002.png").is_file()


def test_davis2016_binary_masks_give_one_object_with_a_capped_memory(davis_root, tmp_path):
    for path in (davis_root / "Annotations" / "480p" / "a").glob("*.png"):
        Image.fromarray(((read_mask(path) > 0) * 255).astype(np.uint8), mode="L").save(path)
    out = tmp_path / "out"
    main(
        [
            "--root",
            str(davis_root),
            "--output",
            str(out),
            "--year",
            "2016",
            "--sequences",
            "a",
            *FAST,
            "--mem-every",
            "2",
            "--max-memory-frames",
            "2",
        ]
    )
    assert set(np.unique(read_mask(out / "a" / "00003.png")).tolist()) <= {0, 1}
    rows = list(csv.reader((out / "per-sequence_results-val.csv").open()))
    assert [r[0] for r in rows[1:]] == ["a_1"]


def test_void_is_background_in_the_given_masks_and_the_scores(tmp_path):
    clean, void = make_davis(tmp_path / "clean", names=("a",)), make_davis(tmp_path / "void", names=("a",))
    for path in (void / "Annotations" / "480p" / "a").glob("*.png"):
        labels = read_mask(path)
        labels[:4] = 255  # DAVIS void, on the first frame too
        write_mask(path, labels)
        write_mask(clean / "Annotations" / "480p" / "a" / path.name, np.where(labels == 255, 0, labels))
    lines = []
    for root in (clean, void):
        main(["--root", str(root), "--output", str(root / "out"), *FAST])
        lines.append((root / "out" / "global_results-val.csv").read_text())
        assert 255 not in np.unique(read_mask(root / "out" / "a" / "00000.png"))
    assert lines[0] == lines[1]
    rows = list(csv.reader((void / "out" / "per-sequence_results-val.csv").open()))
    assert [r[0] for r in rows[1:]] == ["a_1", "a_2"]


@pytest.mark.parametrize("all_frames", [False, True])
def test_youtube_submission_with_late_non_contiguous_objects(tmp_path, all_frames):
    from tests.evaluation.conftest import make_youtube

    root = make_youtube(tmp_path / "ytvos", all_frames=all_frames)
    out = tmp_path / "out"
    main(
        ["--root", str(root), "--output", str(out), "--dataset", "youtube", *FAST, "--save-scores"]
        + (["--all-frames"] if all_frames else [])
    )
    pngs = sorted((out / "Annotations" / "v1").glob("*.png"))
    assert [p.stem for p in pngs] == ["00000", "00010", "00020", "00030", "00040"]
    labels = [read_mask(p) for p in pngs]
    assert all(set(np.unique(m).tolist()) <= {0, 2, 7} for m in labels)
    assert not any((m == 7).any() for m in labels[:2])  # object 7 joins at 00020
    given = read_mask(root / "valid" / "Annotations" / "v1" / "00020.png")
    assert np.all(labels[2][given == 7] == 7)
    assert np.load(out / "scores" / "v1" / "00000.npz")["probs"].shape == (2, 64, 96)  # only object 2 so far
    assert np.load(out / "scores" / "v1" / "00040.npz")["probs"].shape == (3, 64, 96)
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == [f"Annotations/v1/{p.name}" for p in pngs]


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(main, argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_truncated_frame_names_the_file_and_keeps_finished_sequences(davis_root, tmp_path, capsys):
    broken = davis_root / "JPEGImages" / "480p" / "b" / "00003.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    out = tmp_path / "out"
    message = _fails(["--root", str(davis_root), "--output", str(out), *FAST, "--overlay"], capsys)
    assert str(broken) in message and "unreadable image" in message
    assert len(list((out / "a").glob("*.png"))) == 5
    assert [p.name for p in (out / "overlays").iterdir()] == ["a.mp4"]  # b's half-written video is gone


def test_mask_of_another_size_names_the_file(davis_root, tmp_path, capsys):
    mask = davis_root / "Annotations" / "480p" / "a" / "00000.png"
    Image.fromarray(np.ones((10, 12), np.uint8), mode="P").save(mask)
    message = _fails(["--root", str(davis_root), "--output", str(tmp_path / "o"), *FAST], capsys)
    assert str(mask) in message and "mask is 12x10 but its frame 00000.jpg is 96x64" in message


def test_missing_first_annotation_names_the_file(davis_root, tmp_path, capsys):
    mask = davis_root / "Annotations" / "480p" / "b" / "00000.png"
    mask.unlink()
    message = _fails(["--root", str(davis_root), "--output", str(tmp_path / "o"), *FAST], capsys)
    assert str(mask) in message and "no annotation for the first frame" in message


def test_empty_sequence_folder_names_the_folder(davis_root, tmp_path, capsys):
    empty = davis_root / "JPEGImages" / "480p" / "c"
    empty.mkdir()
    message = _fails(["--root", str(davis_root), "--output", str(tmp_path / "o"), *FAST], capsys)
    assert str(empty) in message and "no frames" in message


def test_weights_that_are_not_a_checkpoint_name_the_file(davis_root, tmp_path, capsys):
    weights = tmp_path / "STM_weights.pth"
    weights.write_text("not weights")
    message = _fails(["--root", str(davis_root), "--output", str(tmp_path / "o"), "--weights", str(weights)], capsys)
    assert str(weights) in message and "not a readable checkpoint" in message


def test_the_launcher_is_thin_and_its_parser_lives_in_the_package(tmp_path):
    from stm.evaluation import semi_cli

    launcher = (Path(__file__).resolve().parents[2] / "eval_semi.py").read_text()
    assert "argparse" not in launcher and main is semi_cli.main
    opts = semi_cli.parse_args(["--root", "R", "--output", "O", "--amp", "--sequences", "a,b", "--year", "2016"])
    assert (opts.amp, opts.sequences, opts.year, opts.dataset) == (True, ["a", "b"], 2016, "davis")
    with pytest.raises(SystemExit):
        semi_cli.parse_args(["--root", "R", "--output", "O", "--max-memory-frames", "1"])
