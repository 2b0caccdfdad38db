import zipfile
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from stm.data.io import read_mask
from stm.errors import StmError
from stm.evaluation.writers import OverlayVideo, overlay, write_prediction, write_scores, zip_submission


def test_predictions_round_trip_and_large_ids_are_refused(tmp_path):
    labels = np.random.default_rng(0).integers(0, 9, size=(20, 30)).astype(np.uint8)
    write_prediction(tmp_path / "s" / "00000.png", labels)
    assert np.array_equal(read_mask(tmp_path / "s" / "00000.png"), labels)
    with pytest.raises(ValueError, match="does not fit"):
        write_prediction(tmp_path / "s" / "00001.png", np.full((2, 2), 300))


def test_scores_are_float16_probs(tmp_path):
    probs = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    write_scores(tmp_path / "scores" / "seq" / "00000.npz", probs)
    stored = np.load(tmp_path / "scores" / "seq" / "00000.npz")
    assert list(stored) == ["probs"] and stored["probs"].dtype == np.float16
    np.testing.assert_allclose(stored["probs"], probs, atol=1e-3)
    assert [p.name for p in (tmp_path / "scores" / "seq").iterdir()] == ["00000.npz"]


def test_overlay_blends_only_objects():
    frame = np.full((10, 10, 3), 200, np.uint8)
    labels = np.zeros((10, 10), np.uint8)
    labels[3:7, 3:7] = 1
    blended = overlay(frame, labels)
    assert np.array_equal(blended[0, 0], frame[0, 0])
    assert np.array_equal(blended[5, 5], [164, 100, 100])  # halfway to (128, 0, 0)


def test_overlay_video_appears_only_when_closed(tmp_path):
    path = tmp_path / "overlays" / "seq.mp4"
    video = OverlayVideo(path)
    for _ in range(3):
        video.add(np.zeros((32, 48, 3), np.uint8), np.ones((32, 48), np.uint8))
    assert not path.exists()
    assert video.close() == 3
    assert int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert [p.name for p in path.parent.iterdir()] == ["seq.mp4"]


def test_overlay_video_is_what_browsers_play_at_the_rate_given(tmp_path):
    """H.264 High, yuv420p, an odd frame padded to even sides, the index (moov) before the data,
    at the video's own rate: what Chromium, Firefox and Safari play inline."""
    path = tmp_path / "overlay.mp4"
    frame = np.zeros((33, 47, 3), np.uint8)
    labels = np.zeros((33, 47), np.uint8)
    labels[10:20, 10:30] = 1
    with OverlayVideo(path, fps=30000 / 1001) as video:
        for _ in range(4):
            video.add(frame, labels)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.profile == "High"
        assert (stream.width, stream.height) == (48, 34)
        assert stream.average_rate == Fraction(30000, 1001)
        first = next(container.decode(stream)).to_ndarray(format="rgb24")
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable before fully loaded
    np.testing.assert_allclose(first[15, 20], overlay(frame, labels)[15, 20], atol=12)  # the object, blended
    np.testing.assert_allclose(first[33, 46], first[32, 46], atol=12)  # the padding repeats the last row
    assert first[2, 2].max() < 12


def test_overlay_video_failing_midway_leaves_nothing(tmp_path):
    path = tmp_path / "overlay.mp4"
    with pytest.raises(StmError, match="frame 1 is 40x30, the first was 48x32"):
        with OverlayVideo(path) as video:
            video.add(np.zeros((32, 48, 3), np.uint8), np.zeros((32, 48), np.uint8))
            video.add(np.zeros((30, 40, 3), np.uint8), np.zeros((30, 40), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_submission_zip_has_annotations_at_the_top(tmp_path):
    for video in ("v1", "v2"):
        write_prediction(tmp_path / "out" / "Annotations" / video / "00000.png", np.zeros((4, 4), np.uint8))
    zip_submission(tmp_path / "out" / "Annotations", tmp_path / "out" / "submission.zip")
    with zipfile.ZipFile(tmp_path / "out" / "submission.zip") as archive:
        assert sorted(archive.namelist()) == ["Annotations/v1/00000.png", "Annotations/v2/00000.png"]
