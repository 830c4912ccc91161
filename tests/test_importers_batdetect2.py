"""batdetect2 import (issue 16): the rebuilt network, its ONNX export, the front end and
the package, checked against batdetect2 1.3.1's own outputs (tests/fixtures/batdetect2,
made by scripts/make_batdetect2_reference.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the bats extra (PyTorch) is not installed")

from pamlive.importers import batdetect2 as bd  # noqa: E402

needs_checkpoint = pytest.mark.skipif(
    importlib.util.find_spec("batdetect2") is None,
    reason="batdetect2 is not installed (pip install --no-deps batdetect2==1.3.1)")


@pytest.fixture(scope="module")
def network():
    path = bd.find_checkpoint("batdetect2")
    params, state = bd.load_checkpoint(path)
    net = bd.build_network(params, state, path)
    return params, net, bd.export_onnx(net, bd.spec_rows(params), path)


@needs_checkpoint
@pytest.mark.parametrize("width", [64, 192, 640])
def test_onnx_matches_the_rebuilt_network_at_any_width(network, width):
    _, net, onnx_model = network
    x = np.abs(np.random.default_rng(width).standard_normal((2, 220, width))).astype(np.float32)
    ref, got = bd.run_torch(net, x), bd.run_onnx(onnx_model, x)
    assert got["detection"].shape == (2, 1, 128, width // 2)
    assert got["classes"].shape == (2, 18, 128, width // 2)
    for k in ("detection", "classes"):
        np.testing.assert_allclose(got[k], ref[k], atol=1e-5)
    np.testing.assert_allclose(got["size"], ref["size"], rtol=1e-4, atol=1e-3)
