"""Inference stage: its thread runs the output kind's ``infer`` step on batches of
queued windows (across channels and positions; ``pamlive/kinds/``) and queues what it
returns for the engine's thread (bounded; full: dropped, counted): ``(window, scores)``
for one model, a member's scored windows for an ensemble, released calls for an event
model. A batch that fails is counted and skipped; the stage goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from pamlive.live.windowing import END

log = logging.getLogger(__name__)


class Inference:
    """The ``pamlive-inference`` thread. Counters are written by this thread only."""

    def __init__(self, infer: Callable[[list[object]], Sequence[object]],
                 windows: queue.Queue[object], batch_max: int, queue_size: int) -> None:
        """``infer``: a batch of queued windows -> the results to queue, in order."""
        self.infer = infer
        self.windows = windows
        self.batch_max = batch_max
        self.queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.batches = 0
        self.errors = 0  # windows lost to a failed batch
        self.drops = 0  # scored windows dropped because the merge queue was full
        self.batch_ms: deque[float] = deque(maxlen=64)
        self.failure: Exception | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pamlive-inference", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def mean_batch_ms(self) -> float | None:
        times = list(self.batch_ms)
        return float(np.mean(times)) if times else None

    def _run(self) -> None:
        try:
            while self._batch():
                pass
        except Exception as exc:
            log.exception("inference thread failed; the monitor is deaf and stops")
            self.failure = RuntimeError(f"the inference stage stopped: {exc}")
        finally:
            self.queue.put(END)

    def _batch(self) -> bool:
        """Score what is queued (up to ``batch_max`` windows); False at the end of stream."""
        batch = [self.windows.get()]
        while batch[-1] is not END and len(batch) < self.batch_max:
            try:
                batch.append(self.windows.get_nowait())
            except queue.Empty:
                break
        ended = batch[-1] is END
        if ended:
            batch.pop()
        if not batch:
            return not ended
        t0 = time.perf_counter()
        try:
            results = self.infer(batch)
        except Exception:
            self.errors += len(batch)
            log.exception("inference failed on %d window(s)", len(batch))
            return not ended
        self.batches += 1
        self.batch_ms.append((time.perf_counter() - t0) * 1000.0)
        for result in results:
            try:
                self.queue.put_nowait(result)
            except queue.Full:
                self.drops += 1
        return not ended
