"""The HTTP routes of the annotation tool (Starlette): the page, the video's frames, the workspace's
masks, and one route per interaction. Routes only: the work is the Annotator's and the JobRunner's.

Safe by default: only the opened video's frames (by index) and the workspace's masks and two export
files are served; no route takes a path. Errors a person can cause come back as {"error": "..."},
which the page shows in its one message line.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import cv2
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stm.app.annotator import Annotator, Busy
from stm.app.jobs import JobRunner
from stm.app.strokes import SCRIBBLE_TOOLS, Stroke
from stm.errors import StmError

STATIC = Path(__file__).parent / "static"
EXPORTS = {"masks.zip": "application/zip", "overlay.mp4": "video/mp4"}
log = logging.getLogger(__name__)


def create_app(annotator: Annotator, runner: JobRunner | None = None) -> Starlette:
    runner = runner or JobRunner()
    frame_cache: dict[int, bytes] = {}

    def frame_index(request: Request) -> int:
        index = request.path_params["index"]
        annotator.workspace.check_frame(index)
        return index

    def index_page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def session(request: Request) -> Response:
        return JSONResponse({**annotator.info(), "job": runner.status(_int(request.query_params.get("since", 0)))})

    def frame(request: Request) -> Response:
        index = frame_index(request)
        data = frame_cache.get(index)
        if data is None:
            rgb = np.asarray(annotator.frames[index])
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise StmError(f"frame {index} could not be encoded")
            data = encoded.tobytes()
            if len(frame_cache) > 64:
                frame_cache.pop(next(iter(frame_cache)))
            frame_cache[index] = data
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def labels(request: Request) -> Response:
        """The frame's object ids as raw bytes, H * W uint8 row by row (gzip on the wire): the page
        colours them itself, so recolouring needs no round trip and no colour-managed PNG decoding."""
        ids = annotator.labels(frame_index(request))
        return Response(ids.tobytes(), media_type="application/octet-stream", headers={"Cache-Control": "no-store"})

    async def stroke(request: Request) -> Response:
        data = await _json(request)
        stroke = Stroke.from_dict(data)
        if stroke.tool in SCRIBBLE_TOOLS:
            frames = await run_in_threadpool(annotator.scribble, stroke)
            job = runner.start("scribble", annotator.workspace.num_frames, frames)
            return JSONResponse({"job": job.id, "frames": []})
        await run_in_threadpool(annotator.stroke, stroke)
        return JSONResponse({**_edit_state(annotator), "frames": [stroke.frame]})

    def undo(request: Request) -> Response:
        frame = annotator.undo()
        return JSONResponse({**_edit_state(annotator), "frames": [frame]})

    def redo(request: Request) -> Response:
        frame = annotator.redo()
        return JSONResponse({**_edit_state(annotator), "frames": [frame]})

    async def add_object(request: Request) -> Response:
        data = await _json(request)
        info = await run_in_threadpool(annotator.add_object, data.get("colour"), data.get("name"))
        return JSONResponse(vars(info))

    async def change_object(request: Request) -> Response:
        data = await _json(request)
        object_id = request.path_params["object_id"]
        info = None
        if "colour" in data:
            info = await run_in_threadpool(annotator.recolour, object_id, data["colour"])
        if "name" in data:
            info = await run_in_threadpool(annotator.rename, object_id, data["name"])
        if info is None:
            raise StmError("nothing to change: send a colour or a name")
        return JSONResponse(vars(info))

    async def delete_object(request: Request) -> Response:
        changed = await run_in_threadpool(annotator.delete_object, request.path_params["object_id"])
        return JSONResponse({**_edit_state(annotator), "frames": changed})

    async def propagate(request: Request) -> Response:
        data = await _json(request)
        frame, direction = _int(data.get("frame")), data.get("direction", "forward")
        if direction not in ("forward", "backward"):
            raise StmError(f"direction must be forward or backward, not {direction!r}")
        reverse = direction == "backward"
        frames = await run_in_threadpool(annotator.propagate, frame, reverse)
        job = runner.start("propagation", annotator.expected_frames(frame, reverse), frames)
        return JSONResponse({"job": job.id})

    def cancel(request: Request) -> Response:
        return JSONResponse({"cancelling": runner.cancel()})

    def job(request: Request) -> Response:
        return JSONResponse(runner.status(_int(request.query_params.get("since", 0))))

    async def export(request: Request) -> Response:
        await run_in_threadpool(annotator.export)
        return JSONResponse({name: f"/api/exports/{name}" for name in EXPORTS})

    def exported(request: Request) -> Response:
        name = request.path_params["name"]
        path = annotator.workspace.export_dir / name
        if name not in EXPORTS or not path.is_file():
            return JSONResponse({"error": "not exported yet"}, status_code=404)
        return FileResponse(path, media_type=EXPORTS[name], filename=name)

    routes = [
        Route("/", index_page),
        Route("/api/session", session),
        Route("/api/frames/{index:int}.jpg", frame),
        Route("/api/labels/{index:int}", labels),
        Route("/api/strokes", stroke, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/api/redo", redo, methods=["POST"]),
        Route("/api/objects", add_object, methods=["POST"]),
        Route("/api/objects/{object_id:int}", change_object, methods=["PATCH"]),
        Route("/api/objects/{object_id:int}", delete_object, methods=["DELETE"]),
        Route("/api/propagate", propagate, methods=["POST"]),
        Route("/api/cancel", cancel, methods=["POST"]),
        Route("/api/job", job),
        Route("/api/export", export, methods=["POST"]),
        Route("/api/exports/{name}", exported),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        # stopping (Ctrl+C): a running propagation ends after its frame, so its log line is written
        if runner.cancel():
            await run_in_threadpool(runner.wait, 60)

    handlers = {Busy: _busy, StmError: _user_error, Exception: _server_error}
    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        exception_handlers=handlers,
        middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
    )
    app.state.annotator, app.state.runner = annotator, runner
    return app


def _edit_state(annotator: Annotator) -> dict:
    info = annotator.info()
    return {key: info[key] for key in ("annotated", "can_undo", "can_redo")}


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StmError(f"expected a whole number, got {value!r}") from None


async def _json(request: Request) -> dict:
    try:
        data = await request.json()
    except ValueError:
        raise StmError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise StmError("the request body must be a JSON object")
    return data


async def _busy(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=409)


async def _user_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": f"server error: {type(exc).__name__}: {exc}"}, status_code=500)
