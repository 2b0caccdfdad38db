"""Where annotate.py keeps a session by default: never inside a dataset's folder of frames."""

import pytest

from stm.app.launch import open_annotator
from stm.data.io import write_frame
from stm.data.video_file import write_video
from stm.errors import StmError


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_davis_folder_of_frames_gets_its_workspace_in_the_current_directory(tmp_path, video, monkeypatch):
    """Beside JPEGImages/480p/<seq> the workspace would be one more 'sequence' to every DAVIS reader."""
    dataset = tmp_path / "DAVIS"
    sequence = dataset / "JPEGImages" / "480p" / "bear"
    for index, frame in enumerate(video[0]):
        write_frame(sequence / f"{index:05d}.jpg", frame)
    before = _tree(dataset)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    annotator = open_annotator(sequence)
    annotator.workspace.write_labels(0, video[1][0])
    assert annotator.workspace.root == tmp_path / "work" / "bear.annotations"
    assert (tmp_path / "work" / "bear.annotations" / "masks" / "00000.png").is_file()
    assert _tree(dataset) == before


def test_a_video_file_gets_its_workspace_beside_it(tmp_path, video, monkeypatch):
    write_video(tmp_path / "clip.mp4", video[0])
    monkeypatch.chdir(tmp_path.parent)
    assert open_annotator(tmp_path / "clip.mp4").workspace.root == tmp_path / "clip.annotations"


def test_frames_in_memory_need_a_workspace(video):
    with pytest.raises(StmError, match="need a workspace"):
        open_annotator(list(video[0]))
