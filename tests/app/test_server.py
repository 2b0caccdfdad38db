import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from stm import STM
from stm.app.server import create_app
from stm.app.workspace import read_log
from stm.data.io import read_mask
from stm.errors import StmError
from stm.inference.predictor import VideoPredictor
from tests.app.conftest import make_annotator

SQUARE = [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]


@pytest.fixture
def client(tmp_path, video):
    annotator = make_annotator(tmp_path / "ws", video[0])
    with TestClient(create_app(annotator)) as client:
        client.annotator = annotator
        yield client


def _labels(client, index):
    response = client.get(f"/api/labels/{index}")
    assert response.status_code == 200
    return np.frombuffer(response.content, np.uint8).reshape(48, 64)


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "stm annotate" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    session = client.get("/api/session").json()
    assert (session["frames"], session["width"], session["height"]) == (6, 64, 48)
    assert session["tools"] == ["brush", "eraser", "polygon"] and session["propagation"] is False
    frame = client.get("/api/frames/2.jpg")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"


def test_a_stroke_is_drawn_saved_logged_and_undone(client, tmp_path):
    object_id = client.post("/api/objects", json={}).json()["id"]
    stroke = {"tool": "polygon", "frame": 2, "object": object_id, "path": SQUARE, "width": 4}
    result = client.post("/api/strokes", json=stroke).json()
    assert result["frames"] == [2] and result["annotated"] == [2] and result["can_undo"]
    labels = _labels(client, 2)
    assert (labels[12:36, 16:48] == object_id).all() and labels.sum() == object_id * 24 * 32
    assert np.array_equal(read_mask(tmp_path / "ws" / "masks" / "00002.png"), labels)

    undone = client.post("/api/undo").json()
    assert undone["frames"] == [2] and undone["annotated"] == [] and undone["can_redo"]
    assert not _labels(client, 2).any()
    assert client.post("/api/redo").json()["annotated"] == [2]
    assert np.array_equal(_labels(client, 2), labels)
    actions = [entry["action"] for entry in read_log(tmp_path / "ws" / "interactions.jsonl")]
    assert actions == ["add_object", "stroke", "undo", "redo"]
    assert client.post("/api/redo").json() == {"error": "nothing to redo"}


def test_objects_are_recoloured_renamed_and_deleted_from_every_frame(client):
    first = client.post("/api/objects", json={}).json()
    second = client.post("/api/objects", json={"colour": "#00FF00"}).json()
    assert (first["id"], first["colour"], second["id"], second["colour"]) == (1, "#800000", 2, "#00ff00")
    for frame in (0, 3):
        client.post("/api/strokes", json={"tool": "polygon", "frame": frame, "object": 1, "path": SQUARE})
        client.post("/api/strokes", json={"tool": "brush", "frame": frame, "object": 2, "path": [[0.1, 0.1]]})
    changed = client.patch("/api/objects/1", json={"colour": "#0000ff", "name": "dog"}).json()
    assert changed == {"id": 1, "name": "dog", "colour": "#0000ff"}
    assert client.patch("/api/objects/1", json={"colour": "blue"}).json() == {"error": "colour 'blue' is not #rrggbb"}

    deleted = client.delete("/api/objects/1").json()
    assert deleted["frames"] == [0, 3] and not deleted["can_undo"]
    for frame in (0, 3):
        assert set(np.unique(_labels(client, frame))) == {0, 2}
    assert [o["id"] for o in client.get("/api/session").json()["objects"]] == [2]
    assert client.delete("/api/objects/1").status_code == 400


def test_reopening_the_workspace_restores_the_session(tmp_path, video):
    first = make_annotator(tmp_path / "ws", video[0])
    with TestClient(create_app(first)) as client:
        client.post("/api/objects", json={"colour": "#123456"})
        client.post("/api/strokes", json={"tool": "polygon", "frame": 4, "object": 1, "path": SQUARE})
        before = _labels(client, 4)
    reopened = make_annotator(tmp_path / "ws", video[0])
    with TestClient(create_app(reopened)) as client:
        session = client.get("/api/session").json()
        assert session["objects"] == [{"id": 1, "name": "Object 1", "colour": "#123456"}]
        assert session["annotated"] == [4]
        assert np.array_equal(_labels(client, 4), before)


@pytest.mark.parametrize(
    "path, status",
    [
        ("/static/../server.py", 404),
        ("/static/%2e%2e/server.py", 404),
        ("/static/..%2fserver.py", 404),
        ("/static/%2e%2e%2f%2e%2e%2fstate.json", 404),
        ("/api/frames/-1.jpg", 404),
        ("/api/frames/6.jpg", 400),
        ("/api/frames/..%2f..%2fstate.json", 404),
        ("/api/labels/99", 400),
        ("/api/exports/state.json", 404),
        ("/api/exports/..%2fstate.json", 404),
        ("/api/exports/%2e%2e%2fstate.json", 404),
        ("/state.json", 404),
        ("/masks/00000.png", 404),
    ],
)
def test_nothing_outside_the_video_and_the_workspace_is_served(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert b'"frames"' not in response.content and b"import" not in response.content


def test_bad_requests_get_one_message(client):
    assert client.post("/api/strokes", content=b"{").json() == {"error": "the request body is not JSON"}
    assert client.post("/api/strokes", json=[1]).json() == {"error": "the request body must be a JSON object"}
    no_object = client.post("/api/strokes", json={"tool": "brush", "frame": 0, "object": 5, "path": [[0, 0]]})
    assert no_object.status_code == 400 and no_object.json() == {"error": "no object 5; add it first"}
    outside = client.post("/api/strokes", json={"tool": "brush", "frame": 9, "object": 1, "path": [[0, 0]]})
    assert outside.json() == {"error": "frame 9 is outside the video (0..5)"}
    scribble = client.post("/api/strokes", json={"tool": "positive", "frame": 0, "object": 1, "path": [[0, 0]]})
    assert "no interactive model is loaded" in scribble.json()["error"]
    propagate = client.post("/api/propagate", json={"frame": 0, "direction": "forward"})
    assert propagate.status_code == 400 and "no propagation model is loaded" in propagate.json()["error"]
    assert client.post("/api/undo").json() == {"error": "nothing to undo"}


def test_an_unreadable_frame_is_one_message_and_the_workspace_is_kept(tmp_path, video):
    class BrokenVideo(list):
        def __getitem__(self, index):
            if index == 3:
                raise StmError("clip.mp4: frame 3 cannot be decoded (corrupt data)")
            return super().__getitem__(index)

    annotator = make_annotator(tmp_path / "ws", BrokenVideo(video[0]))
    with TestClient(create_app(annotator)) as client:
        client.post("/api/objects", json={})
        client.post("/api/strokes", json={"tool": "polygon", "frame": 0, "object": 1, "path": SQUARE})
        response = client.get("/api/frames/3.jpg")
        assert response.status_code == 400
        assert response.json() == {"error": "clip.mp4: frame 3 cannot be decoded (corrupt data)"}
        export = client.post("/api/export")
        assert export.status_code == 400 and "frame 3" in export.json()["error"]
    assert read_mask(tmp_path / "ws" / "masks" / "00000.png").any()


def test_export_is_downloadable(client):
    client.post("/api/objects", json={})
    client.post("/api/strokes", json={"tool": "polygon", "frame": 1, "object": 1, "path": SQUARE})
    assert client.get("/api/exports/masks.zip").status_code == 404  # not yet
    links = client.post("/api/export").json()
    assert links == {"masks.zip": "/api/exports/masks.zip", "overlay.mp4": "/api/exports/overlay.mp4"}
    archive = client.get(links["masks.zip"])
    assert archive.status_code == 200 and archive.content[:2] == b"PK"
    assert client.get(links["overlay.mp4"]).headers["content-type"] == "video/mp4"
    assert read_log(client.annotator.workspace.log_path)[-1]["action"] == "export"


def test_stopping_the_server_ends_a_running_propagation_with_its_log_line(tmp_path, video):
    torch.manual_seed(0)
    annotator = make_annotator(tmp_path / "ws", video[0], semi=VideoPredictor(STM("semi", "resnet18")))
    with TestClient(create_app(annotator)) as client:
        client.post("/api/objects", json={})
        client.post("/api/strokes", json={"tool": "polygon", "frame": 0, "object": 1, "path": SQUARE})
        assert client.post("/api/propagate", json={"frame": 0, "direction": "forward"}).status_code == 200
    # the server has stopped: the propagation has ended (cancelled, or done if it was quicker) and said so
    entry = read_log(tmp_path / "ws" / "interactions.jsonl")[-1]
    assert entry["action"] == "propagate" and entry["outcome"] in ("cancelled", "done")
    assert annotator.busy is None
    assert annotator.workspace.frames_with_masks() == list(range(entry["frames"] + 1))
