"""One long operation (a propagation, a scribble re-segmentation) on a background thread, so the
server's event loop and the page stay responsive. The page polls `status(since)` for progress and
the frames finished since its last look; cancel stops it after the frame in progress.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

from stm.errors import StmError

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: int
    kind: str
    total: int
    state: str = "running"  # running, done, cancelled, failed
    updated: list[int] = field(default_factory=list)  # frames finished, in order
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_frame_seconds: float | None = None  # from the request to the first finished frame
    seconds: float | None = None  # from the request to the end
    cancel: threading.Event = field(default_factory=threading.Event)


class JobRunner:
    def __init__(self):
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def start(self, kind: str, total: int, frames: Generator[int, None, None]) -> Job:
        """Runs `frames` (a generator that does the work and yields each finished frame; closing it
        stops the work) in a thread."""
        with self._lock:
            if self._job is not None and self._job.state == "running":
                frames.close()
                raise StmError(f"{self._job.kind} is already running")
            job = Job(next(self._ids), kind, max(total, 0))
            self._job = job
            self._thread = threading.Thread(target=self._run, args=(job, frames), name=f"stm-{kind}", daemon=True)
            self._thread.start()
            return job

    def _run(self, job: Job, frames: Generator[int, None, None]) -> None:
        try:
            for index in frames:
                with self._lock:
                    job.updated.append(index)
                    if job.first_frame_seconds is None:
                        job.first_frame_seconds = time.monotonic() - job.started
                if job.cancel.is_set():
                    frames.close()
                    job.state = "cancelled"
                    break
            else:
                job.state = "done"
        except StmError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # a bug or a broken file: the page shows one line, the terminal the rest
            log.exception("%s failed", job.kind)
            job.error, job.state = f"{job.kind} failed: {type(exc).__name__}: {exc}", "failed"
        finally:
            job.seconds = time.monotonic() - job.started

    def cancel(self) -> bool:
        """Asks the running job to stop after its current frame. False when nothing runs."""
        with self._lock:
            if self._job is None or self._job.state != "running":
                return False
            self._job.cancel.set()
            return True

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def status(self, since: int = 0) -> dict:
        """The current (or last) job; `updated` lists the frames finished after the first `since`."""
        with self._lock:
            job = self._job
            if job is None:
                return {"id": None, "state": "idle", "updated": [], "cursor": 0}
            since = min(max(since, 0), len(job.updated))
            return {
                "id": job.id,
                "kind": job.kind,
                "state": job.state,
                "done": len(job.updated),
                "total": job.total,
                "updated": job.updated[since:],
                "cursor": len(job.updated),
                "error": job.error,
                "first_frame_seconds": job.first_frame_seconds,
                "seconds": job.seconds if job.seconds is not None else time.monotonic() - job.started,
                "cancelling": job.cancel.is_set() and job.state == "running",
            }
