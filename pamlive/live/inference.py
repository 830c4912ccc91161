"""Inference stage: its thread scores queued windows in batches (across channels and
positions) with ONNX Runtime and queues ``(window, scores)`` for the merger (bounded;
full: dropped, counted). A batch that fails is counted and skipped; the stage goes on.
An event model's stage queues each batch's released calls instead (``live/calls.py``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from pamlive.inference.classifier import Classifier
from pamlive.live.windowing import END
from pamlive.pipeline import classify_windows
from pamlive.windows import Window

log = logging.getLogger(__name__)


class Inference:
    """The ``pamlive-inference`` thread. Counters are written by this thread only."""

    def __init__(self, classifier: Classifier | None, windows: queue.Queue[object],
                 batch_max: int, queue_size: int,
                 find_calls: Callable[[list[Window]], Sequence[object]] | None = None) -> None:
        """``find_calls``: an event model's windows -> the calls each released (queued per
        window) instead of the classifier's scores."""
        self.classifier = classifier
        self.find_calls = find_calls
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
        windows: list[Window] = [w for w in batch if isinstance(w, Window)]
        if not windows:
            return not ended
        t0 = time.perf_counter()
        try:
            if self.find_calls is not None:
                results: list[object] = list(self.find_calls(windows))
            else:
                assert self.classifier is not None
                scores = classify_windows(self.classifier, windows)
                results = list(zip(windows, scores, strict=True))
        except Exception:
            self.errors += len(windows)
            log.exception("inference failed on %d window(s)", len(windows))
            return not ended
        self.batches += 1
        self.batch_ms.append((time.perf_counter() - t0) * 1000.0)
        for result in results:
            try:
                self.queue.put_nowait(result)
            except queue.Full:
                self.drops += 1
        return not ended
