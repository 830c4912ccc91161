"""TensorFlow graphs to ONNX (tf2onnx), plus the original graph as a parity reference.

Every TensorFlow model goes the same way: a concrete function (a SavedModel signature
or a rebuilt network) is frozen, re-rooted on a placeholder ``input`` of the shape the
transform chain produces (some SavedModels were traced with a wrong static shape) with
an output ``scores``, then converted. The frozen graph itself runs in TensorFlow as the
reference the parity tests compare the ONNX model with.

TensorFlow and tf2onnx belong to the optional ``convert`` extra; running a converted
package needs only onnxruntime.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pamlive.errors import ModelError, first_line

INPUT = "input"
OUTPUT = "scores"
OPSET = 17
_CONVERT_HINT = "install the converters: pip install 'pamlive[convert]' (tensorflow-cpu, tf2onnx)"


def tensorflow() -> Any:
    """TensorFlow on one thread (the machine is shared), quiet, or a one-line error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # quiet, and no oneDNN round-off
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError(f"converting this model needs TensorFlow: {_CONVERT_HINT}") from None
    if not getattr(tensorflow, "_configured", False):
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised by the caller: keep its settings
            pass
        tf.get_logger().setLevel(logging.ERROR)
        tensorflow._configured = True  # type: ignore[attr-defined]
    return tf


def freeze(concrete_fn: Any, input_shape: Sequence[int]) -> Any:
    """Frozen GraphDef of ``concrete_fn`` fed from ``input`` ``[None, *input_shape]``."""
    tf = tensorflow()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(concrete_fn)
    inputs = [t for t in frozen.inputs if t.dtype != tf.resource]
    if len(inputs) != 1 or len(frozen.outputs) != 1:
        raise ModelError(f"expected a model with one input and one output, found "
                         f"{len(inputs)} and {len(frozen.outputs)}")
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, *input_shape], name=INPUT)
        try:
            (out,) = tf.import_graph_def(
                frozen.graph.as_graph_def(), input_map={inputs[0].name: placeholder},
                return_elements=[frozen.outputs[0].name], name="",
            )
        except ValueError as exc:
            raise ModelError(f"the model cannot take input of shape {[-1, *input_shape]} "
                             f"({first_line(exc)})") from None
        tf.identity(out, name=OUTPUT)
    return graph.as_graph_def()


def model_layout(concrete_fn: Any, input_shape: Sequence[int] | None) -> list[int]:
    """The function's own input layout if it holds the same values as ``input_shape``
    (e.g. ``[1125]`` for a chain's ``[1125, 1, 1]``) or no shape is asked for, else
    ``input_shape``: some SavedModels were traced with a static shape that does not fit
    their real input."""
    tf = tensorflow()
    spec = next(t for t in concrete_fn.inputs if t.dtype != tf.resource).shape
    own = spec.as_list()[1:] if spec.rank else []
    if input_shape is None:
        if not own or any(d is None for d in own):
            raise ModelError(f"the model's input shape {spec} is not fully known")
        return [int(d) for d in own]
    if own and all(d is not None for d in own) and np.prod(own) == np.prod(input_shape):
        return [int(d) for d in own]
    return list(input_shape)


def saved_model_graph(saved_model_dir: str, signature: str | None,
                      input_shape: Sequence[int] | None) -> tuple[Any, list[int]]:
    """Frozen graph of one SavedModel signature (the only one, or ``signature``) and the
    input layout it takes (see :func:`model_layout`; ``None``: the signature's own)."""
    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(saved_model_dir)
    except Exception as exc:  # TensorFlow raises many unrelated types for bad files
        raise ModelError(f"{saved_model_dir}: cannot load the TensorFlow SavedModel "
                         f"({first_line(exc)})") from None
    names = list(loaded.signatures.keys())
    if signature is None:
        if len(names) != 1:
            raise ModelError(f"{saved_model_dir}: SavedModel has signatures {names}; "
                             "cannot tell which one to convert")
        signature = names[0]
    if signature not in loaded.signatures:
        raise ModelError(f"{saved_model_dir}: SavedModel has no signature '{signature}' "
                         f"(has {names})")
    function = loaded.signatures[signature]
    layout = model_layout(function, input_shape)
    return freeze(function, layout), layout


def rewrite_power_spectra(graph_def: Any) -> Any:
    """Rewrite ``Real(Conj(s) * s)``, ``s = [Slice](RFFT(x))``, as real DFT matmuls.

    tf2onnx cannot convert complex arithmetic after an RFFT (Koogu's spectral layer
    computes its power spectrum that way); ``|DFT(x)|^2`` as ``(x C)^2 + (x S)^2`` with
    constant cosine/sine matrices is the same quantity in real ops.
    """
    tf = tensorflow()
    from tensorflow.core.framework import graph_pb2, types_pb2
    from tensorflow.python.framework import tensor_util

    gd = graph_pb2.GraphDef()
    gd.CopyFrom(graph_def)
    nodes = {n.name: n for n in gd.node}
    shapes = tf.Graph()
    with shapes.as_default():
        tf.import_graph_def(gd, name="")

    def node_of(tensor: str) -> Any:
        return nodes[tensor.lstrip("^").split(":")[0]]

    def skip_identity(n: Any) -> Any:
        while n.op == "Identity":
            n = node_of(n.input[0])
        return n

    def add(name: str, op: str, *inputs: str) -> Any:
        n = gd.node.add()
        n.name, n.op = name, op
        n.input.extend(inputs)
        n.attr["T"].type = types_pb2.DT_FLOAT
        return n

    for real in [n for n in gd.node if n.op == "Real"]:
        mul = node_of(real.input[0])
        if mul.op != "Mul":
            continue
        a, b = (node_of(i) for i in mul.input)
        conj, other = (a, b) if a.op == "Conj" else (b, a)
        if conj.op != "Conj" or node_of(conj.input[0]).name != other.name:
            continue
        fft = skip_identity(node_of(other.input[0]) if other.op == "Slice" else other)
        if fft.op != "RFFT":
            continue
        n_fft = int(tensor_util.MakeNdarray(node_of(fft.input[1]).attr["value"].tensor)[0])
        frame_tensor = fft.input[0] if ":" in fft.input[0] else fft.input[0] + ":0"
        frame_len = shapes.get_tensor_by_name(frame_tensor).shape[-1]
        if frame_len is None:
            raise ModelError(f"cannot convert RFFT '{fft.name}': its frame length is unknown")
        k = np.arange(n_fft // 2 + 1)[None, :]
        t = np.arange(frame_len)[:, None]
        for part, values in (("cos", np.cos(2 * np.pi * t * k / n_fft)),
                             ("sin", np.sin(2 * np.pi * t * k / n_fft))):
            c = gd.node.add()
            c.name, c.op = f"{fft.name}/dft_{part}", "Const"
            c.attr["dtype"].type = types_pb2.DT_FLOAT
            c.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(
                values.astype(np.float32)))
            mm = add(f"{fft.name}/dft_{part}_mm", "BatchMatMulV2", fft.input[0], c.name)
            mm.attr["adj_x"].b = mm.attr["adj_y"].b = False
            add(f"{fft.name}/dft_{part}_sq", "Square", mm.name)
        power = add(f"{fft.name}/power", "AddV2", f"{fft.name}/dft_cos_sq",
                    f"{fft.name}/dft_sin_sq")
        if other.op == "Slice":
            other.input[0] = power.name
            other.attr["T"].type = types_pb2.DT_FLOAT
            power = other
        real.op = "Identity"
        del real.input[:]
        real.input.append(power.name)
        for key in list(real.attr):
            del real.attr[key]
        real.attr["T"].type = types_pb2.DT_FLOAT
    return tf.compat.v1.graph_util.extract_sub_graph(gd, [OUTPUT])


def graph_to_onnx(graph_def: Any) -> bytes:
    """tf2onnx conversion; an op ONNX cannot express is a one-line error naming it."""
    tensorflow()
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise ModelError(f"converting this model needs tf2onnx: {_CONVERT_HINT}") from None
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=[f"{INPUT}:0"], output_names=[f"{OUTPUT}:0"], opset=OPSET,
        )
    except Exception as exc:  # tf2onnx raises bare ValueError/Exception for unsupported graphs
        raise ModelError(f"tf2onnx cannot convert the model: {first_line(exc)}") from None
    unsupported = sorted({n.op_type for n in model.graph.node
                          if n.domain not in ("com.microsoft",)
                          and not onnx.defs.has(n.op_type, n.domain)})
    if unsupported:
        raise ModelError(f"unsupported op(s) with no ONNX equivalent: {', '.join(unsupported)}")
    return model.SerializeToString()


def graph_runner(graph_def: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The frozen graph as a TensorFlow function ``x -> scores`` (the parity reference)."""
    tf = tensorflow()
    wrapped = tf.compat.v1.wrap_function(lambda: tf.import_graph_def(graph_def, name=""), [])
    run = wrapped.prune(wrapped.graph.get_tensor_by_name(f"{INPUT}:0"),
                        wrapped.graph.get_tensor_by_name(f"{OUTPUT}:0"))
    return lambda x: run(tf.constant(np.asarray(x, dtype=np.float32))).numpy()
