"""The bounded thread pool that runs background jobs; one per process, held by its Context.

It knows nothing of job rows (services/jobs.py records those): it runs tasks, refuses
more than it can queue, and stops with the process's Context (``close``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor

from mailctl.errors import ThrottledError

MAX_WORKERS = 2
MAX_QUEUED = 16  # running and waiting together; more is refused with 429


class JobRunner:
    """A bounded pool of threads for background jobs, with a bounded queue in front.

    Its threads start on the first job, so a process that runs none (most CLI commands)
    never has any.
    """

    def __init__(self, workers: int = MAX_WORKERS, queued: int = MAX_QUEUED) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(queued)
        self._futures: dict[Future[object], Callable[[], None] | None] = {}
        self._lock = threading.Lock()
        self._closed = False

    def reserve(self) -> None:
        """Take a slot before creating a job row; ThrottledError if the queue is full."""
        with self._lock:
            if self._closed:
                raise ThrottledError("The server is stopping; start the job again later.")
        if not self._slots.acquire(blocking=False):
            raise ThrottledError("Too many background jobs are waiting; try again later.")

    def release(self) -> None:
        """Give back a slot taken by ``reserve`` that no job will use."""
        self._slots.release()

    def submit(self, task: Callable[[], object], cancelled: Callable[[], None] | None) -> None:
        """Run ``task`` in the pool; the caller has reserved a slot for it.

        ``cancelled`` is called instead if the runner closes before the task started.
        """
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="mailctl-job"
                )
            future = self._pool.submit(task)
            self._futures[future] = cancelled
        future.add_done_callback(self._done)

    def _done(self, future: Future[object]) -> None:
        with self._lock:
            self._futures.pop(future, None)
        self._slots.release()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in all for every submitted job; True if all ended."""
        with self._lock:
            pending = list(self._futures)
        _, not_done = futures.wait(pending, timeout=timeout)
        return not not_done

    def close(self, timeout: float) -> bool:
        """Take no more jobs, cancel those not started, wait up to ``timeout`` s for the rest.

        True if every job ended. A job still running past the timeout keeps its thread
        until it ends (the interpreter waits for it at exit); its row is recorded as usual.
        """
        with self._lock:
            self._closed = True
            pool = self._pool
            waiting = list(self._futures.items())
        if pool is None:
            return True
        for future, cancelled in waiting:
            if future.cancel() and cancelled is not None:
                cancelled()
        pool.shutdown(wait=False)
        return self.wait(timeout)
