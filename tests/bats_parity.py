"""pamlive analyze against batdetect2's own calls (tests/fixtures/batdetect2, made by
scripts/make_batdetect2_reference.py) on the six bat recordings of ../shared.

Prints the parity figures of docs/bats.md (converts the installed batdetect2 checkpoint
into a temporary package first; needs the bats extra and batdetect2 --no-deps):

    PYTHONPATH=. python tests/bats_parity.py [--shared ../shared] [--precision bfloat16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pamlive.analyze import analyze_files
from pamlive.calls.call import Call
from pamlive.calls.match import Parity, match_calls
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.sources.files import open_audio

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "batdetect2"
CONFIG = REPO / "configs" / "bats.toml"


def fixtures() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.glob("*.json"))]


def reference_calls(doc: dict[str, Any], nyquist_hz: float) -> list[Call]:
    """batdetect2's calls; like its final output (``convert_results``), without those whose
    high frequency lies above the recording's Nyquist frequency."""
    calls = []
    for c in doc["calls"]:
        if int(c["high_hz"]) > nyquist_hz:
            continue
        calls.append(Call(c["start_s"], c["end_s"], c["low_hz"], c["high_hz"], c["species"],
                          c["class_prob"], c["det_prob"], 0, {}))
    return calls


def parity(package: ModelPackage, shared: Path, hop_s: float, outdir: Path,
           precision: str = "float32") -> dict[str, Parity]:
    """Per recording: pamlive's calls (threshold as the fixtures') against batdetect2's."""
    docs = fixtures()
    threshold = docs[0]["meta"]["detection_threshold"]
    wavs = [shared / d["recording"] for d in docs]
    result = analyze_files(wavs, package, outdir, hop_s=hop_s, detection_threshold=threshold,
                           progress=False, precision=precision)
    found = {f.path: f.calls for f in result.files}
    return {w.stem: match_calls(found[w], reference_calls(d, open_audio(w).sample_rate / 2))
            for w, d in zip(wavs, docs, strict=True)}


def config_hop() -> float:
    return float(tomllib.loads(CONFIG.read_text(encoding="utf-8"))["model"]["hop_s"])


def report(title: str, per_file: dict[str, Parity]) -> str:
    total = Parity()
    lines = [title, "| recording | batdetect2 | pamlive | same call | same species | "
             "probs within 0.01 |", "|---|---|---|---|---|---|"]
    for name, p in per_file.items():
        total += p
        lines.append(f"| {name} | {p.reference} | {p.found} | {len(p.pairs)} | "
                     f"{p.same_species} | {p.within_prob_tol} |")
    lines.append(f"| all | {total.reference} | {total.found} | {len(total.pairs)} | "
                 f"{total.same_species} | {total.within_prob_tol} |")
    dev = total.max_dev()
    lines.append(f"fully matching: {total.within_prob_tol}/{total.reference} = "
                 f"{total.within_prob_tol / max(total.reference, 1):.3f}; max deviation over "
                 f"matched calls: start {dev['start_s'] * 1e3:.4f} ms, frequency bounds "
                 f"{dev['freq_hz']:.3f} Hz, class prob {dev['class_prob']:.2e}, det prob "
                 f"{dev['det_prob']:.2e}")
    return "\n".join(lines)


def main() -> None:
    from pamlive.importers.batdetect2 import find_checkpoint, import_package

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                    help="[model] precision (bfloat16: OpenVINO, a CPU with AVX512-BF16)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = load_model_package(import_package(find_checkpoint("batdetect2"),
                                                Path(tmp) / "pkg"))
        for hop, what in ((3.0, "batdetect2's chunks"), (config_hop(), "configs/bats.toml")):
            print(report(f"\nhop {hop} s ({what}), 3 s windows, {args.precision}:",
                         parity(pkg, args.shared, hop, Path(tmp) / f"out{hop}",
                                args.precision)))


if __name__ == "__main__":
    main()
