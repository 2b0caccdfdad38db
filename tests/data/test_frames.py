"""Frame sources: video files through PyAV (written here with PyAV), folders, arrays; their errors."""

import av
import numpy as np
import pytest

from stm.data.frames import ArrayFrames, FolderFrames, open_frames
from stm.data.io import write_frame
from stm.data.synthetic import SyntheticSpec, render_video
from stm.data.video_file import VideoFileFrames, write_video
from stm.errors import StmError


def write_mp4(path, frames, keyframe_every=8, fps=24):
    """H.264 with frequent keyframes and B-frames, near-lossless (crf 0, 4:4:4)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0", "g": str(keyframe_every), "bf": "2"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def clip():
    frames, _ = render_video(np.random.default_rng(3), SyntheticSpec(48, 80, 30, 30, 1, 1))
    return frames


def test_mp4_round_trip_in_any_order(clip, tmp_path):
    video = VideoFileFrames(write_mp4(tmp_path / "clip.mp4", clip))
    assert len(video) == 30 and video.size == (48, 80)
    forward = [video[i].copy() for i in range(30)]
    for original, decoded in zip(clip, forward, strict=True):
        assert decoded.shape == (48, 80, 3) and decoded.dtype == np.uint8
        assert np.abs(decoded.astype(int) - original).mean() < 2  # only the RGB <-> YUV rounding
    backward = VideoFileFrames(tmp_path / "clip.mp4")
    for index in reversed(range(30)):  # seeks to keyframes, decodes each group about once
        np.testing.assert_array_equal(backward[index], forward[index])
    shuffled = VideoFileFrames(tmp_path / "clip.mp4")
    for index in np.random.default_rng(0).permutation(30):
        np.testing.assert_array_equal(shuffled[int(index)], forward[index])
    with pytest.raises(IndexError):
        video[30]


def test_write_video_is_what_reads_back(clip, tmp_path):
    assert write_video(tmp_path / "clip.mp4", iter(clip), fps=29.97, crf=0) == 30
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # written under a temporary name, renamed
    video = VideoFileFrames(tmp_path / "clip.mp4")
    assert len(video) == 30 and video.size == (48, 80) and video.fps == pytest.approx(29.97)
    assert max(np.abs(video[i].astype(int) - clip[i]).mean() for i in range(30)) < 8  # 4:2:0 colour, textured frames
    with pytest.raises(StmError, match="no frames to write"):
        write_video(tmp_path / "none.mp4", [])
    assert not (tmp_path / "none.mp4").exists()


def test_folder_in_natural_order_and_lazily(clip, tmp_path):
    for index in (0, 1, 2, 10):  # frame_10 sorts after frame_2
        write_frame(tmp_path / f"frame_{index}.png", clip[index])
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = open_frames(tmp_path)
    assert isinstance(frames, FolderFrames) and len(frames) == 4
    assert [p.name for p in frames.files] == ["frame_0.png", "frame_1.png", "frame_2.png", "frame_10.png"]
    np.testing.assert_array_equal(frames[3], clip[10])
    write_frame(tmp_path / "frame_11.png", clip[0][:40])
    with pytest.raises(StmError, match="frame_11.png: frame is 80x40, the first frame is 80x48"):
        open_frames(tmp_path)[4]


def test_arrays(clip):
    frames = open_frames(list(clip[:3]))
    assert isinstance(frames, ArrayFrames) and frames.size == (48, 80)
    with pytest.raises(StmError, match="frame 1: frame is 80x40"):
        ArrayFrames([clip[0], clip[1][:40]])[1]
    with pytest.raises(StmError, match="uint8 RGB"):
        ArrayFrames([clip[0].astype(np.float32)])


def test_bad_videos_are_errors_that_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 this is not a video" * 50)
    with pytest.raises(StmError, match="garbage.mp4: unreadable video"):
        open_frames(garbage)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(StmError, match="empty.mp4"):
        open_frames(empty)
    sound = tmp_path / "sound.wav"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    with pytest.raises(StmError, match="sound.wav: no video stream"):
        open_frames(sound)
    with pytest.raises(StmError, match="missing.mp4: no such video file or folder"):
        open_frames(tmp_path / "missing.mp4")
    (tmp_path / "no_frames").mkdir()
    with pytest.raises(StmError, match="no_frames: no frames"):
        open_frames(tmp_path / "no_frames")
    with pytest.raises(StmError, match="empty"):
        open_frames([])
