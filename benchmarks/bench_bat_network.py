"""CPU of the batdetect2 network per 3 s window, graph and ONNX Runtime variants side by
side, each with its parity against batdetect2's own calls (issue 16).

For every variant: CPU seconds (``time.process_time``, median of ``--repeats``, one
intra-op thread unless named) to run one 3 s window (``[1, 1, 220, 6016]``) of a real
recording, the ratio against the baseline (batdetect2's own ``Net2DFast`` graph behind the
same resize, as first exported), and parity on the six recordings of
tests/fixtures/batdetect2: each 3 s chunk through pamlive's front end and the variant,
decoded by batdetect2's own ``run_nms`` (threshold 0.3, as the fixtures), matched to
batdetect2's calls (start within 1 ms, frequency bounds within 1 kHz, same species, every
probability within 0.01).

    PYTHONPATH=. nice -n 10 python benchmarks/bench_bat_network.py [--shared ../shared]

Needs the bats extra (PyTorch) and batdetect2 1.3.1 (``--no-deps``: its checkpoint and
its model and post-processing code, run as they are).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from pamlive.dsp.chain import TransformChain
from pamlive.importers import batdetect2 as bd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import batdetect2_own as own  # tests/: batdetect2's own code, call parity

CALIBRATION_WIDTH = 1024  # columns per calibration crop: ranges, not whole windows
FIRST_LAST = ("conv_dn_0", "conv_size_op", "conv_classes_op")


def crops(spectrograms: Sequence[np.ndarray], width: int = CALIBRATION_WIDTH
          ) -> list[np.ndarray]:
    """Calibration inputs ``[1, 1, rows, width]``: consecutive crops of each ``(rows, W)``."""
    out = [s[None, None, :, a:a + width] for s in spectrograms
           for a in range(0, s.shape[-1] - width + 1, width)]
    return [np.ascontiguousarray(c, np.float32) for c in out]


def quantize(onnx_model: bytes, spectrograms: Sequence[np.ndarray], tmp: Path,
             only: Sequence[str] | None = None) -> bytes:
    """ONNX Runtime's static quantization of ``onnx_model`` (QDQ, int8 per-channel weights,
    uint8 activations with min/max ranges over ``spectrograms``, the front end's output
    for bat audio): every conv but the first and the output heads, or ``only`` those
    named."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = crops(spectrograms)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator[np.ndarray] = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {"spectrogram": x}

    src, pre, out = tmp / "float.onnx", tmp / "pre.onnx", tmp / "int8.onnx"
    src.write_bytes(onnx_model)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
    keep = [n for n in convs if (any(f"/{f}/" in n for f in FIRST_LAST) if only is None
                                 else not any(f"/{f}/" in n for f in only))]
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, op_types_to_quantize=["Conv"], nodes_to_exclude=keep,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return out.read_bytes()


REPO = Path(__file__).resolve().parents[1]
LIVE_HOP_S = 2.5  # configs/bats.toml: a 3 s window every 2.5 s


class Theirs(torch.nn.Module):
    """batdetect2's own network behind its resize: the graph pamlive first exported."""

    def __init__(self, model: torch.nn.Module, height: int, factor: float) -> None:
        super().__init__()
        self.model, self.height, self.factor = model, height, factor

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = torch.floor(torch.tensor(spec.shape[-1], dtype=torch.float32)
                            * self.factor).to(torch.int64)
        out = self.model(F.interpolate(spec, size=(self.height, width), mode="bilinear",
                                       align_corners=False))
        return out.pred_det, out.pred_size, out.pred_class


def export(net: torch.nn.Module, rows: int) -> bytes:
    buf = io.BytesIO()
    dyn = {0: "batch", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros((1, 1, rows, 512)),), buf,
                          input_names=["spectrogram"],
                          output_names=["detection", "size", "classes"],
                          dynamic_axes={k: dyn for k in ("spectrogram", "detection", "size",
                                                         "classes")},
                          opset_version=bd.OPSET, dynamo=False)
    return buf.getvalue()


class Variant(NamedTuple):
    name: str
    model: bytes
    threads: int = 1
    level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spinning: bool = True
    batch: int = 1


def session(v: Variant) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = v.threads, 1
    options.graph_optimization_level = v.level
    if not v.spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(v.model, options, providers=["CPUExecutionProvider"])


def cpu_per_window(sessions: Sequence[ort.InferenceSession], variants: Sequence[Variant],
                   window: np.ndarray, repeats: int) -> list[float]:
    """Median CPU seconds per window of each session (``batch`` windows per run), the
    sessions taking turns so that a busy machine slows them alike."""
    inputs = [np.ascontiguousarray(np.repeat(window[None, None], v.batch, axis=0))
              for v in variants]
    for s, x in zip(sessions, inputs, strict=True):
        s.run(None, {"spectrogram": x})
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for s, x, v, t in zip(sessions, inputs, variants, times, strict=True):
            start = time.process_time()
            s.run(None, {"spectrogram": x})
            t.append((time.process_time() - start) / v.batch)
    return [statistics.median(t) for t in times]


def network_gflop(net: torch.nn.Module, window: np.ndarray) -> float:
    """Floating-point operations of one window through the network (PyTorch's count)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.from_numpy(window[None, None]))
    return counter.get_total_flops() / 1e9


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate per CPU second (numpy's BLAS): about the
    most a float32 convolution can reach here."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = min(_cpu(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _cpu(f: Callable[[], object]) -> float:
    start = time.process_time()
    f()
    return time.process_time() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    models, post_process = own.modules()
    path = bd.find_checkpoint("batdetect2")
    params, state = bd.load_checkpoint(path)
    rows = bd.spec_rows(params)
    chain = TransformChain(bd.front_end(params, path))
    recs = own.recordings(args.shared.resolve(), chain)
    window = recs[-1].chunks[0]  # a full 3 s window

    theirs = models.Net2DFast(params["num_filters"], num_classes=len(params["class_names"]),
                              emb_dim=params["emb_dim"], ip_height=params["ip_height"],
                              resize_factor=params["resize_factor"])
    theirs.load_state_dict(state)
    base = export(Theirs(theirs.eval(), params["ip_height"], params["resize_factor"]), rows)
    net = bd.build_network(params, state, path)
    fast = bd.export_onnx(net, rows, path)
    calibration = [c for r in recs[3:4] for c in r.chunks]  # one 8 s AudioMoth recording
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantize(fast, calibration, Path(tmp))
        int8_one = quantize(fast, calibration, Path(tmp), only=["conv_up_4"])
    level = ort.GraphOptimizationLevel
    variants = [
        Variant("baseline: batdetect2's graph, ORT_ENABLE_ALL", base),
        Variant("baseline, ORT_ENABLE_EXTENDED (no NCHWc)", base,
                level=level.ORT_ENABLE_EXTENDED),
        Variant("baseline, batch of 4 windows", base, batch=4),
        Variant("baseline, 2 threads, spinning", base, threads=2),
        Variant("baseline, 2 threads, no spinning", base, threads=2, spinning=False),
        Variant("rewritten graph (pamlive's export)", fast),
        Variant("rewritten, batch of 4 windows", fast, batch=4),
        Variant("rewritten + int8 QDQ (first conv, heads float)", int8),
        Variant("rewritten + int8 QDQ, batch of 4", int8, batch=4),
        Variant("rewritten + int8 QDQ of conv_up_4 only", int8_one),
    ]
    nms = own.nms_config(params)
    classes = [str(c) for c in params["class_names"]]
    sessions = [session(v) for v in variants]
    cpu = cpu_per_window(sessions, variants, window, args.repeats)
    frames = (round(bd.CHUNK_S * 256000) - bd.framing(params, path).overlap) // \
        bd.framing(params, path).hop
    print(f"one 3 s window: {frames} spectrogram frames, padded to W = {window.shape[1]} "
          f"(network width {window.shape[1] // 2}); CPU s per window: median of "
          f"{args.repeats} runs, variants interleaved; parity on {len(recs)} recordings")
    gflop, rate = network_gflop(net, window), sgemm_gflops()
    print(f"the network: {gflop:.1f} GFLOP per window; float32 matrix multiply here: "
          f"{rate:.0f} GFLOP per CPU second, so no float32 variant can go below "
          f"{gflop / rate:.2f} s per window")
    print("| variant | CPU s / window | vs baseline | cores, 4 ch at hop 2.5 s | same call | "
          "+ same species | + probs within 0.01 | max Δprob | max Δstart ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v, s, t in zip(variants, sessions, cpu, strict=True):
        q = own.Parity()
        for r in recs:
            q = q + own.parity(own.calls(lambda x, s=s: s.run(None, {"spectrogram": x}), r,
                                         post_process.run_nms, nms, classes), r.calls)
        print(f"| {v.name} | {t:.3f} | {cpu[0] / t:.2f}× | {4 * t / LIVE_HOP_S:.2f} | "
              f"{q.paired}/{q.reference} | "
              f"{q.same_species} | {q.matching} ({q.matching / q.reference:.3f}) | "
              f"{q.max_dprob:.1e} | {q.max_dstart_s * 1e3:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
