import json
import zipfile

import cv2
import numpy as np
import pytest

from stm.app.workspace import ObjectInfo, Workspace, default_colour, read_log
from stm.data.io import read_mask
from stm.errors import StmError


def _workspace(root, frames=4, height=12, width=16):
    return Workspace(root, "clip.mp4", frames, height, width)


def test_masks_objects_and_annotated_frames_survive_a_reopen(tmp_path):
    ws = _workspace(tmp_path / "ws")
    labels = np.zeros((12, 16), np.uint8)
    labels[2:5, 3:9] = 7
    ws.write_labels(2, labels)
    ws.objects[7] = ObjectInfo(7, "dog", "#12ab34")
    ws.annotated.add(2)
    ws.scribbled.add(3)
    ws.save_state()

    again = _workspace(tmp_path / "ws")
    assert np.array_equal(again.labels(2), labels)
    assert not again.labels(0).any() and again.labels(0).shape == (12, 16)
    assert again.objects == {7: ObjectInfo(7, "dog", "#12ab34")}
    assert again.annotated == {2} and again.scribbled == {3}
    assert again.frames_with_masks() == [2]
    # the PNG is a DAVIS palette PNG that any DAVIS tool reads
    assert np.array_equal(read_mask(tmp_path / "ws" / "masks" / "00002.png"), labels)
    assert not list((tmp_path / "ws").rglob(".*"))  # no temporary files left behind


def test_a_workspace_of_another_video_is_refused(tmp_path):
    _workspace(tmp_path / "ws", frames=4)
    with pytest.raises(StmError, match="belongs to a video of 4 frames"):
        _workspace(tmp_path / "ws", frames=5)


def test_a_corrupt_state_is_an_error_naming_the_file(tmp_path):
    _workspace(tmp_path / "ws")
    (tmp_path / "ws" / "state.json").write_text("{")
    with pytest.raises(StmError, match="state.json: not a readable workspace state"):
        _workspace(tmp_path / "ws")


def test_frames_outside_the_video_are_refused(tmp_path):
    ws = _workspace(tmp_path / "ws")
    for index in (-1, 4):
        with pytest.raises(StmError, match="outside the video"):
            ws.labels(index)


def test_log_lines_are_appended_and_a_cut_last_line_is_skipped(tmp_path):
    ws = _workspace(tmp_path / "ws")
    ws.log({"action": "add_object", "object": 1})
    ws.log({"action": "undo", "frame": 0})
    with open(ws.log_path, "a") as stream:
        stream.write('{"action": "str')  # a crash in the middle of a line
    entries = read_log(ws.log_path)
    assert [e["action"] for e in entries] == ["add_object", "undo"]
    assert all(isinstance(e["time"], float) for e in entries)
    lines = ws.log_path.read_text().splitlines()
    lines.insert(0, "not json")
    ws.log_path.write_text("\n".join(lines))
    with pytest.raises(StmError, match="interactions.jsonl:1: not a JSON line"):
        read_log(ws.log_path)


def test_export_writes_every_frame_and_an_overlay_video_in_the_chosen_colours(tmp_path):
    ws = _workspace(tmp_path / "ws", frames=3, height=32, width=48)
    labels = np.zeros((32, 48), np.uint8)
    labels[8:24, 8:40] = 1
    ws.write_labels(1, labels)
    ws.objects[1] = ObjectInfo(1, "a", "#00ff00")
    frames = [np.zeros((32, 48, 3), np.uint8) for _ in range(3)]
    archive, video = ws.export(frames, fps=10)
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == [f"Annotations/{i:05d}.png" for i in range(3)]
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and capture.get(cv2.CAP_PROP_FPS) == 10
    capture.set(cv2.CAP_PROP_POS_FRAMES, 1)
    ok, bgr = capture.read()
    assert ok and bgr[16, 24, 1] > 100 and bgr[16, 24, 2] < 60  # green, as chosen, not DAVIS red


def test_default_colours_are_the_davis_palette():
    assert default_colour(1) == "#800000" and default_colour(2) == "#008000"
    assert json.dumps(default_colour(255))
