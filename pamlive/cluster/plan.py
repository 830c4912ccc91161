"""Cut an input file into chunks whose windows are exactly those of a serial run.

Serial ``analyze`` reads a file in blocks of a whole number of window hops. A chunk owns
a run of those blocks: the windows that serial analysis completes while reading them.
It starts reading ``context`` blocks earlier, so that the resampler and the window
buffer hold the same samples as in a serial run by the time its own blocks arrive; the
windows completed during the context are left to the chunk before.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil
from pathlib import Path

from pamlive.analyze import analysis_block_frames
from pamlive.dsp.resample import design_antialias_taps
from pamlive.inference.package import ModelPackage
from pamlive.windows import input_hop_frames


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to rebuild the model: small, picklable, no arrays."""

    path: str  # package path (absolute) or builtin:NAME
    hop_s: float
    threads: int = 1


@dataclass(frozen=True)
class Chunk:
    """Frames ``[own_start, own_end)`` of ``path``, read from ``read_start``."""

    path: Path
    index: int  # chunk number within the file
    sample_rate: int
    channels: int
    block: int  # frames per read, as in serial analyze
    read_start: int
    own_start: int
    own_end: int
    last: bool  # the file's last chunk: it ends the stream (flush) and checks truncation
    first_window: int  # serial index of the first window this chunk's windower cuts

    @property
    def own_frames(self) -> int:
        return self.own_end - self.own_start


def context_frames(package: ModelPackage, input_rate: int, hop_in: int) -> int:
    """Input frames a chunk reads before its own: a window, a hop and the resampler's
    reach, so every window it keeps sees the samples a serial run sees."""
    ratio = Fraction(package.sample_rate, input_rate)
    up, down = ratio.numerator, ratio.denominator
    reach = 0 if up == down == 1 else len(design_antialias_taps(up, down)) // up + 1
    segment_in = ceil(package.segment_s * input_rate)
    return segment_in + hop_in + 2 * reach


def plan_file(path: Path, frames: int, sample_rate: int, channels: int,
              package: ModelPackage, hop_s: float, chunk_s: float) -> list[Chunk]:
    """Chunks of about ``chunk_s`` seconds (whole blocks) covering ``frames``."""
    hop_in = input_hop_frames(package, sample_rate, hop_s)
    block = analysis_block_frames(hop_in, channels)
    n_blocks = max(1, ceil(frames / block))
    per_chunk = n_blocks if hop_in is None else max(1, round(chunk_s * sample_rate / block))
    ctx_blocks = 0 if hop_in is None else ceil(context_frames(package, sample_rate, hop_in)
                                                / block)
    chunks: list[Chunk] = []
    for first in range(0, n_blocks, per_chunk):
        stop = min(first + per_chunk, n_blocks)
        read_from = max(0, first - ctx_blocks) * block
        chunks.append(Chunk(
            path=path, index=len(chunks), sample_rate=sample_rate, channels=channels,
            block=block, read_start=read_from, own_start=first * block,
            own_end=stop * block if stop < n_blocks else frames, last=stop == n_blocks,
            first_window=read_from // hop_in if hop_in else 0,
        ))
    return chunks
