"""Opening a video for annotation (frames, predictors, workspace) and serving it on localhost."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from stm.app.annotator import Annotator
from stm.app.workspace import Workspace
from stm.data.frames import open_frames
from stm.errors import StmError
from stm.inference.predictor import VideoPredictor

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_workspace(video: str | os.PathLike) -> Path:
    """A video file's workspace is <video>.annotations beside it. A folder of frames is usually part
    of a dataset (DAVIS's JPEGImages/480p/<seq>), where one more folder would be read as one more
    sequence, so its workspace is <folder>.annotations in the current directory: nothing is written
    inside a dataset unless --workspace says so."""
    path = Path(video).resolve()
    if path.is_dir():
        return Path.cwd() / f"{path.name}.annotations"
    return path.parent / f"{path.stem}.annotations"


def load_predictors(
    weights: str | None, interactive_weights: str | None, size, device: str
) -> tuple[VideoPredictor | None, VideoPredictor | None]:
    """The propagation predictor (random init with a warning when no weights are given, unless only an
    interactive model is wanted) and the interactive one; each must be the kind its flag says."""
    semi = interactive = None
    if weights or not interactive_weights:
        semi = VideoPredictor.from_weights(weights, device=device, amp=False, size=size)
        if semi.mode != "semi":
            raise StmError(f"{weights}: an interactive checkpoint; give it with --interactive-weights")
    if interactive_weights:
        interactive = VideoPredictor.from_weights(interactive_weights, device=device, amp=False, size=size)
        if interactive.mode != "interactive":
            raise StmError(f"{interactive_weights}: not an interactive checkpoint; give it with --weights")
    return semi, interactive


def open_annotator(
    video: str | os.PathLike,
    workspace: str | os.PathLike | None = None,
    semi: VideoPredictor | None = None,
    interactive: VideoPredictor | None = None,
    log_fields: dict | None = None,
) -> Annotator:
    """The annotation session of a video: its frames, its workspace (created or reopened) and the
    predictors. Logs an `open` interaction naming the video and the models."""
    source = str(Path(video).resolve()) if isinstance(video, (str, os.PathLike)) else video
    frames = open_frames(source)
    height, width = frames.size
    if workspace is None and not isinstance(video, (str, os.PathLike)):
        raise StmError("frames given in memory need a workspace (where the masks are kept)")
    root = Path(workspace) if workspace else default_workspace(video)
    name = Path(video).name if isinstance(video, (str, os.PathLike)) else "video"
    ws = Workspace(root, name, len(frames), height, width)
    annotator = Annotator(ws, frames, source, semi, interactive)
    ws.log({"action": "open", "video": source if isinstance(source, str) else name, "frames": len(frames),
            "height": height, "width": width, **(log_fields or {})})  # fmt: skip
    return annotator


def check_port(host: str, port: int) -> None:
    """StmError when the address cannot be listened on (before the models load for nothing)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise StmError(f"{host}:{port}: cannot listen there ({exc.strerror}); choose another --port") from None


def serve(annotator: Annotator, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves the page until Ctrl+C. Anything but a loopback host is said out loud: the page can
    read the video and write the workspace, and it has no login."""
    import uvicorn

    from stm.app.server import create_app

    if host not in LOCAL_HOSTS:
        print(f"warning: listening on {host}: anyone who can reach this machine can open the video and edit the masks")
    shown = f"[{host}]" if ":" in host else host
    print(
        f"stm annotate: open http://{shown}:{port}/   (workspace {annotator.workspace.root}; Ctrl+C stops)", flush=True
    )
    uvicorn.run(create_app(annotator), host=host, port=port, log_level="warning")


@contextlib.contextmanager
def serving_in_thread(app, port: int, timeout: float = 20) -> Iterator[str]:
    """Serves a Starlette app on 127.0.0.1 from a thread of this process (browser tests, the
    responsiveness benchmark); yields its URL and stops the server on leaving."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise StmError(f"127.0.0.1:{port}: the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
