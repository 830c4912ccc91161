"""Helpers for the live-path tests: a JACK dummy server, a JACK file player, a model.

The JACK server uses the dummy backend (no sound card) under a per-test server name, so
it never meets another server on the machine; the player is a real JACK client in the
test process whose output ports are wired to the monitor's input ports with jack_connect.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pamlive.inference.package import builtin_names


def jack_available() -> str | None:
    """None when a JACK test can run here, else the reason it cannot."""
    for tool in ("jackd", "jack_connect", "jack_lsp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install jackd2)"
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"JACK-Client (python module 'jack') unavailable: {exc}"
    return None


@contextmanager
def jack_server(rate: int = 48000, period: int = 1024, capture: int = 2):
    """A private jackd (dummy backend); yields the environment naming it for clients."""
    name = f"pamlive-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_AUDIO_RESERVATION": "1"}
    proc = subprocess.Popen(
        # synchronous (-S) with a long client timeout: a client that is late on a loaded
        # machine delays the cycle instead of having its period replaced by silence
        ["jackd", "--no-realtime", "-S", "-t", "5000", "-n", name, "-d", "dummy",
         "-r", str(rate), "-p", str(period), "-C", str(capture), "-P", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not jack_ports(env, "system:capture"):
            if proc.poll() is not None:
                raise RuntimeError(f"jackd did not start: {proc.stderr.read().strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError("jackd did not start within 15 s")
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def jack_ports(env: dict[str, str], prefix: str = "") -> list[str]:
    out = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        return []
    return [p for p in out.stdout.split() if p.startswith(prefix)]


def jack_connect(env: dict[str, str], source: str, dest: str) -> None:
    subprocess.run(["jack_connect", source, dest], env=env, check=True, timeout=10)


class JackPlayer:
    """Plays ``audio`` (frames, channels) through JACK output ports, starting on demand.

    ``start_utc_s`` is the wall-clock time of the JACK cycle whose input period carries
    the first played sample: the moment that sample was "captured" on the shared graph.
    ``cycles`` logs, for every cycle that played, its first sample's position in ``audio``
    and the ``time.monotonic()`` at which the cycle began (preallocated: the process
    callback must not allocate); :meth:`played_at` turns a sample into that time.
    """

    def __init__(self, env: dict[str, str], audio: np.ndarray) -> None:
        import jack

        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.client = jack.Client("pamlive-test-player", servername=env["JACK_DEFAULT_SERVER"],
                                  no_start_server=True)
        self.ports = [self.client.outports.register(f"out_{i + 1}")
                      for i in range(self.audio.shape[1])]
        self.position = 0
        self.start_utc_s: float | None = None
        self.rate, self.period = self.client.samplerate, self.client.blocksize
        self.cycles = np.zeros((self.audio.shape[0] // self.period + 2, 2), np.float64)
        self.n_cycles = 0
        self.finished = threading.Event()
        self._go = threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if not self._go.is_set() or self.finished.is_set():
            for port in self.ports:
                port.get_array().fill(0.0)
            return
        if self.start_utc_s is None:
            # this cycle's period began `frames_since_cycle_start` frames ago
            self.start_utc_s = time.time() - self.client.frames_since_cycle_start / (
                self.client.samplerate)
        if self.n_cycles < self.cycles.shape[0]:
            self.cycles[self.n_cycles] = (self.position, time.monotonic()
                                          - self.client.frames_since_cycle_start
                                          / self.client.samplerate)
            self.n_cycles += 1
        chunk = self.audio[self.position : self.position + frames]
        for i, port in enumerate(self.ports):
            buf = port.get_array()
            buf[: chunk.shape[0]] = chunk[:, i]
            buf[chunk.shape[0] :] = 0.0
        self.position += frames
        if self.position >= self.audio.shape[0]:
            self.finished.set()

    def played_at(self, sample: int) -> float:
        """``time.monotonic()`` at which ``sample`` of ``audio`` was in the air, as for a
        sound card: a period's samples arrive together at the start of the cycle that
        delivers them, the last one just captured, earlier ones one sample apart before."""
        cycles = self.cycles[: self.n_cycles]
        k = int(np.searchsorted(cycles[:, 0], sample, side="right")) - 1
        if k < 0 or sample >= self.position:
            raise ValueError(f"sample {sample} was not played")
        return float(cycles[k, 1] - (self.period - (sample - cycles[k, 0])) / self.rate)

    def play(self) -> None:
        self._go.set()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def band_energy_package(path: Path, log_energy_centre: float, *, name: str = "band-energy"
                        ) -> Path:
    """A real ONNX model package whose 'right_whale' score rises with 47-357 Hz energy.

    It stands in for the trained model where that is not built yet: the live tests compare
    the live path with ``analyze`` on the same model, whatever the model is.
    """
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 40, 40, 1])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])
    consts = {
        "eps": np.array(1e-9, np.float32), "centre": np.array(log_energy_centre, np.float32),
        "gain": np.array(4.0, np.float32), "axes": np.array([1], np.int64),
    }
    nodes = [
        helper.make_node("ReduceMean", ["features"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Add", ["m", "eps"], ["me"]),
        helper.make_node("Log", ["me"], ["lm"]),
        helper.make_node("Sub", ["lm", "centre"], ["d"]),
        helper.make_node("Mul", ["d", "gain"], ["z"]),
        helper.make_node("Unsqueeze", ["z", "axes"], ["z1"]),
        helper.make_node("Neg", ["z1"], ["nz1"]),
        helper.make_node("Concat", ["nz1", "z1"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "band_energy", [x], [y], [
        onnx.numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path / "model.onnx")
    meta = {
        "schema": "pamlive.model/1", "name": name, "version": "0.0.1",
        "description": "test stand-in: band energy", "class_names": ["noise", "right_whale"],
        "thresholds": {"noise": 1.0, "right_whale": 0.5},
        "binary": {"noise": False, "right_whale": True},
        "segment_s": 2.0, "sample_rate": 2000, "input_shape": [-1, 40, 40, 1],
        "output_activation": "softmax", "freq_range": [47, 357],
        "transforms": [
            {"name": "load_audio", "params": {"sr": 2000}},
            {"name": "spectrogram", "params": {"fft": 256, "hop": 100}},
            {"name": "freq_compression", "params": {"bins": 40, "fmin": 47, "fmax": 357}},
        ],
    }
    (path / "pamlive-model.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


def band_log_energy(audio: np.ndarray, rate: int, hop_s: float = 1.0) -> np.ndarray:
    """Per-window log mean band energy of ``audio`` as the stand-in model computes it."""
    from pamlive.inference.package import load_model_package
    from pamlive.windows import Windower

    probe = load_model_package(band_energy_package(Path(os.environ.get("TMPDIR", "/tmp"))
                                                   / f"pamlive-probe-{uuid.uuid4().hex[:6]}", 0.0))
    w = Windower(probe.chain(), rate, audio.shape[1], probe.segment_s, hop_s)
    feats = [win.features for win in w.push(audio) + w.flush()]
    shutil.rmtree(probe.path, ignore_errors=True)
    return np.log(np.array([f.mean(axis=tuple(range(1, f.ndim))).max() for f in feats]) + 1e-9)


def live_model(tmp: Path, audio: np.ndarray, rate: int) -> str:
    """The built-in NARW model when it is built, else the band-energy stand-in set so that
    about the loudest fifth of the windows of ``audio`` score above 0.5."""
    if "narw" in builtin_names():
        return "builtin:narw"
    centre = float(np.quantile(band_log_energy(audio, rate), 0.8))
    return str(band_energy_package(tmp / "band-energy", centre))
