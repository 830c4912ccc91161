"""Average right whale detectors trained with different seeds into one package.

    python training/ensemble_narw.py OUT MEMBER_DIR [MEMBER_DIR ...] [--threshold T]

Why: with 132 labelled calls, networks trained from different seeds agree on clear
upcalls and disagree on what each learned by chance; the mean of their probabilities
keeps the first and damps the second. The members become one ONNX graph (one input,
each member's nodes side by side, an ONNX ``Mean`` of their softmax outputs), so the
result is an ordinary single-model package: the live monitor, ``analyze`` and the
benchmarks run it as they run any model.

The members must share the package metadata (chain, input, classes): the first
member's ``pamlive-model.json`` is kept, with its threshold set to ``--threshold`` and
its description saying how many members it averages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx
from onnx import compose, helper

INPUT, OUTPUT = "input", "probabilities"


def average_graphs(members: list[onnx.ModelProto]) -> onnx.ModelProto:
    """One model whose ``probabilities`` are the mean of the members' ``probabilities``;
    all members read the same ``input``."""
    nodes, inits, outs = [], [], []
    for i, member in enumerate(members):
        prefixed = compose.add_prefix(member, f"m{i}_")
        graph = prefixed.graph
        for node in graph.node:
            node.input[:] = [INPUT if name == f"m{i}_{INPUT}" else name for name in node.input]
        nodes += list(graph.node)
        inits += list(graph.initializer)
        outs.append(f"m{i}_{OUTPUT}")
    nodes.append(helper.make_node("Mean", outs, [OUTPUT], name="seed_mean"))
    first = members[0].graph
    graph = helper.make_graph(nodes, "seed_mean", list(first.input), list(first.output), inits)
    model = helper.make_model(graph, opset_imports=list(members[0].opset_import),
                              producer_name="pamlive ensemble_narw")
    model.ir_version = members[0].ir_version
    onnx.checker.check_model(model, full_check=True)
    return model


def average_members(out: Path, members: list[Path], threshold: float | None = None) -> None:
    """Write the package at ``out``: the mean of the packages in ``members``."""
    metas = [json.loads((m / "pamlive-model.json").read_text()) for m in members]
    keys = ("transforms", "input_shape", "class_names", "sample_rate", "segment_s")
    for m, meta in zip(members[1:], metas[1:], strict=True):
        if any(meta[k] != metas[0][k] for k in keys):
            raise SystemExit(f"{m}: its package differs from {members[0]} in "
                             + ", ".join(k for k in keys if meta[k] != metas[0][k]))
    model = average_graphs([onnx.load(str(m / "model.onnx")) for m in members])
    meta = dict(metas[0])
    if threshold is not None:
        meta["thresholds"] = {**meta["thresholds"], "right_whale": threshold}
    meta["description"] = (f"{meta['description']} Mean of {len(members)} networks "
                           "trained alike from different seeds.")
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    (out / "pamlive-model.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("members", type=Path, nargs="+")
    p.add_argument("--threshold", type=float)
    args = p.parse_args(argv)
    average_members(args.out, args.members, args.threshold)
    print(f"wrote {args.out}: mean of {len(args.members)} members")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
