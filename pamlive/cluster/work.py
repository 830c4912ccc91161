"""One chunk on a worker: read it where it lives, score its windows, send scores back.

Only window scores travel (a few floats per window and channel): the audio is read by
the worker from shared storage and never passes through the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pamlive.cluster.plan import Chunk, ModelSpec
from pamlive.errors import PamliveError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.pipeline import classify_windows
from pamlive.windows import Window, make_windower


@dataclass
class ChunkScores:
    """The windows a chunk owns, in stream order, with absolute indices."""

    chunk: Chunk
    window_index: np.ndarray  # (n,) int64, serial window numbers
    start_sample: np.ndarray  # (n,) int64, input-file frames
    end_sample: np.ndarray  # (n,) int64
    scores: np.ndarray  # (n, channels, classes) float32
    frames_read: int  # absolute frame reached (where the stream ended, for the last chunk)
    error: str | None = None  # a read error ends the file here, as in a serial run

    @classmethod
    def failed(cls, chunk: Chunk, error: str) -> ChunkScores:
        """A chunk whose task could not run: the file ends (with this error) before it."""
        none = np.zeros(0, np.int64)
        return cls(chunk, none, none, none, np.zeros((0, chunk.channels, 0), np.float32),
                   frames_read=chunk.read_start, error=error)

    @property
    def ends_stream(self) -> bool:
        return self.chunk.last or self.error is not None


@lru_cache(maxsize=4)
def _model(spec: ModelSpec) -> tuple[ModelPackage, Classifier]:
    """Load each model once per worker process, not once per chunk."""
    package = load_model_package(spec.path)
    return package, Classifier(package, threads=spec.threads)


def score_chunk(chunk: Chunk, spec: ModelSpec) -> ChunkScores:
    """Read ``chunk`` (with its context), cut and score the windows it owns."""
    from pamlive.sources.files import iter_blocks

    package, classifier = _model(spec)
    windower = make_windower(package, chunk.sample_rate, chunk.channels, spec.hop_s)
    kept: list[tuple[list[Window], np.ndarray]] = []
    position = chunk.read_start
    error = None
    stop = None if chunk.last else chunk.own_end
    try:
        for block in iter_blocks(chunk.path, chunk.block, start=chunk.read_start, stop=stop):
            owned = position >= chunk.own_start
            position += block.shape[0]
            windows = windower.push(block)
            if owned and windows:
                kept.append((windows, classify_windows(classifier, windows)))
    except PamliveError as exc:
        error = str(exc)
    if chunk.last or error is not None:
        windows = windower.flush()
        if windows:
            kept.append((windows, classify_windows(classifier, windows)))
    return _collect(chunk, kept, position, error, len(package.class_names))


def _collect(chunk: Chunk, kept: list[tuple[list[Window], np.ndarray]], position: int,
             error: str | None, n_classes: int) -> ChunkScores:
    windows = [w for batch, _ in kept for w in batch]
    scores = (np.concatenate([s for _, s in kept]) if kept
              else np.zeros((0, chunk.channels, n_classes), np.float32))
    shift = chunk.read_start
    return ChunkScores(
        chunk=chunk,
        window_index=np.array([w.index + chunk.first_window for w in windows], np.int64),
        start_sample=np.array([w.start_sample + shift for w in windows], np.int64),
        end_sample=np.array([w.end_sample + shift for w in windows], np.int64),
        scores=scores.astype(np.float32, copy=False),
        frames_read=position,
        error=error,
    )
