"""Drive a Dask cluster: plan chunks, score them on workers, merge and write per file.

The client does what must be done in stream order (PAMGuard's merge rule over a file's
windows, the Raven table, the store transaction); workers do the heavy part (reading,
resampling, transforms, ONNX). A worker that dies takes its running chunks with it and
Dask runs them again elsewhere; a chunk's result is used once, so no row is missing or
repeated.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pamlive.analyze import AnalyzeResult, open_inputs
from pamlive.analyze_file import FileResult, write_table
from pamlive.cluster.plan import Chunk, ModelSpec, plan_file
from pamlive.cluster.store import InputKey, ResultStore, config_hash
from pamlive.cluster.work import ChunkScores, score_chunk
from pamlive.detection import Detection
from pamlive.errors import ConfigError, PamliveError
from pamlive.inference.package import ModelPackage
from pamlive.pipeline import make_merger, merged_thresholds
from pamlive.raven import table_paths, write_selection_table

STORE_NAME = "pamlive-detections.sqlite"


@dataclass
class ClusterRun:
    """What a cluster analysis did, beyond the per-file results."""

    result: AnalyzeResult = field(default_factory=AnalyzeResult)
    skipped: list[Path] = field(default_factory=list)  # complete from an earlier run
    chunks: int = 0  # chunk tasks submitted
    dashboard: str | None = None


@contextmanager
def connect(address: str) -> Iterator[Any]:
    """A Dask client for ``local``, ``local:N`` (N worker processes) or a scheduler URL."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--cluster needs Dask: pip install 'pamlive[cluster]'") from None
    if address == "local" or address.startswith("local:"):
        count = address.partition(":")[2]
        if count and not (count.isdigit() and int(count) > 0):
            raise ConfigError(f"--cluster {address}: local:N needs a whole number of workers")
        workers = int(count) if count else (os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:8787")
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    if "://" not in address:
        raise ConfigError(f"--cluster must be local, local:N or a scheduler address like "
                          f"tcp://HOST:8786, got {address!r}")
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise ConfigError(f"--cluster {address}: no Dask scheduler answers ({exc})") from None
    with client:
        yield client


def analyze_on_cluster(
    client: Any,
    inputs: Sequence[str | Path],
    package: ModelPackage,
    model_path: str,
    outdir: Path,
    *,
    hop_s: float = 1.0,
    max_merge: int = 10,
    thresholds: Mapping[str, float] | None = None,
    chunk_s: float = 3600.0,
    console: Console | None = None,
    progress: bool = True,
) -> ClusterRun:
    """Analyse ``inputs`` on ``client``'s cluster; tables are those of serial analyze."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PamliveError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from None
    console = console or Console(stderr=True)
    merged = merged_thresholds(package, thresholds or {})
    spec = ModelSpec(model_path, hop_s)
    model = f"{package.name}@{package.version}"
    digest = config_hash({"model": model, "onnx": _sha256(package.onnx_path),
                          "hop_s": hop_s, "max_merge": max_merge, "thresholds": merged})
    run = ClusterRun(dashboard=client.dashboard_link)
    store = ResultStore(outdir / STORE_NAME)
    try:
        pending = _plan(inputs, package, hop_s, chunk_s, model, digest, store, outdir, run)
        futures = {}
        for order, (path, job) in enumerate(pending.items()):
            for chunk in job.chunks:
                fut = client.submit(score_chunk, chunk, spec, pure=False, priority=-order)
                futures[fut] = (path, chunk)
        run.chunks = len(futures)
        total = sum(c.own_frames for job in pending.values() for c in job.chunks)
        _gather(futures, pending, total, console, progress, run, store, package, outdir,
                max_merge, merged)
    finally:
        store.close()
    return run


@dataclass
class _FileJob:
    key: InputKey
    table: Path
    chunks: list[Chunk]
    done: dict[int, ChunkScores] = field(default_factory=dict)

    def finished(self) -> list[ChunkScores] | None:
        """The chunks up to the one that ends the stream, once they are all in."""
        ordered = []
        for chunk in self.chunks:
            got = self.done.get(chunk.index)
            if got is None:
                return None
            ordered.append(got)
            if got.ends_stream:
                return ordered
        return ordered


def _plan(inputs: Sequence[str | Path], package: ModelPackage, hop_s: float, chunk_s: float,
          model: str, digest: str, store: ResultStore, outdir: Path,
          run: ClusterRun) -> dict[Path, _FileJob]:
    """A job per input not complete yet; tables named as serial analyze names them."""
    infos = open_inputs(inputs, run.result)
    tables = table_paths(outdir, list(infos))
    todo: dict[Path, _FileJob] = {}
    for path, info in infos.items():
        key = InputKey.of(path, model, digest)
        if store.is_complete(key):
            run.skipped.append(path)
            continue
        todo[path] = _FileJob(key, tables[path], plan_file(
            path.resolve(), info.frames, info.sample_rate, info.channels, package, hop_s,
            chunk_s))
    return todo


def _gather(futures: dict[Any, tuple[Path, Chunk]], pending: dict[Path, _FileJob], total: int,
            console: Console, progress: bool, run: ClusterRun, store: ResultStore,
            package: ModelPackage, outdir: Path, max_merge: int,
            thresholds: dict[str, float]) -> None:
    from distributed import as_completed

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
            task = bar.add_task(f"analysing on {len(futures)} chunk task(s)", total=total)
            for fut in as_completed(list(futures)):
                path, chunk = futures[fut]
                job = pending.get(path)
                scores = _outcome(fut, chunk)
                bar.advance(task, chunk.own_frames)
                if job is None:  # the file already ended at an earlier chunk's read error
                    continue
                job.done[chunk.index] = scores
                ready = job.finished()
                if ready is not None:
                    del pending[path]
                    run.result.files.append(
                        _finish_file(path, job, ready, store, package, max_merge, thresholds))
    except KeyboardInterrupt:
        for fut in futures:
            fut.cancel()
        done = len(run.result.files) - len(run.result.failed) + len(run.skipped)
        print(f"pamlive: interrupted: {done} input(s) complete, {len(pending)} not; their "
              f"tables are in {outdir} (no partial table is left); run the same command "
              f"again to finish the rest", file=sys.stderr)
        raise


def _outcome(fut: Any, chunk: Chunk) -> ChunkScores:
    """The chunk's scores, or a stream-ending error if its task failed for good."""
    try:
        result: ChunkScores = fut.result()
        return result
    except Exception as exc:  # e.g. KilledWorker after repeated worker deaths
        return ChunkScores.failed(
            chunk, f"{chunk.path}: chunk {chunk.index} failed on the cluster ({exc!r})")


def _finish_file(path: Path, job: _FileJob, ready: list[ChunkScores], store: ResultStore,
                 package: ModelPackage, max_merge: int,
                 thresholds: dict[str, float]) -> FileResult:
    rate = ready[0].chunk.sample_rate
    found, error = merge_windows(ready, package, rate, max_merge, thresholds)
    if error:
        print(f"pamlive: error: {error}", file=sys.stderr)
    table, error = write_table(job.table, error,
                               lambda: write_selection_table(job.table, found))
    store.record(job.key, package.version, table, found, error)
    frames = ready[-1].frames_read
    return FileResult(path, table, found, frames / rate, error)


def merge_windows(ready: Sequence[ChunkScores], package: ModelPackage, rate: int,
                  max_merge: int, thresholds: Mapping[str, float]
                  ) -> tuple[list[Detection], str | None]:
    """PAMGuard's merge rule over a file's windows, chunk after chunk, as serial does."""
    merger = make_merger(package, rate, max_merge, thresholds)
    found: list[Detection] = []
    for part in ready:
        for i in range(part.window_index.shape[0]):
            found.extend(merger.push(int(part.window_index[i]), int(part.start_sample[i]),
                                     int(part.end_sample[i]), part.scores[i]))
        if part.ends_stream:
            found.extend(merger.flush(part.frames_read))
            return found, part.error
    return found, None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
