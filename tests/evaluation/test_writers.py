import zipfile

import cv2
import numpy as np
import pytest

from stm.data.io import read_mask
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
    video.close()
    assert int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_submission_zip_has_annotations_at_the_top(tmp_path):
    for video in ("v1", "v2"):
        write_prediction(tmp_path / "out" / "Annotations" / video / "00000.png", np.zeros((4, 4), np.uint8))
    zip_submission(tmp_path / "out" / "Annotations", tmp_path / "out" / "submission.zip")
    with zipfile.ZipFile(tmp_path / "out" / "submission.zip") as archive:
        assert sorted(archive.namelist()) == ["Annotations/v1/00000.png", "Annotations/v2/00000.png"]
