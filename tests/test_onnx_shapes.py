"""CenterFace's fixed input made free, by editing the ONNX protobuf without the onnx package."""
import numpy as np
import onnxruntime as ort
import pytest

from helpers import needs_centerface
from mobilefer.inference.detectors import centerface_fp32
from mobilefer.inference.onnx_shapes import free_dimensions


@needs_centerface
def test_the_bundled_detector_takes_any_input_size_once_freed():
    original = centerface_fp32().read_bytes()
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # not the notes on the published file's weights listed as inputs
    fixed = ort.InferenceSession(original, quiet, providers=["CPUExecutionProvider"])
    assert fixed.get_inputs()[0].shape == [10, 3, 32, 32]  # as published
    freed = ort.InferenceSession(free_dimensions(original), quiet, providers=["CPUExecutionProvider"])
    assert all(isinstance(d, str) for d in freed.get_inputs()[0].shape)
    # batch and spatial sides free in every output (its channels the network fixes)
    assert all(isinstance(out.shape[i], str) for out in freed.get_outputs() for i in (0, 2, 3))
    name = freed.get_inputs()[0].name
    for batch, h, w in ((1, 64, 96), (2, 128, 32)):
        heat = freed.run(None, {name: np.zeros((batch, 3, h, w), np.float32)})[0]
        assert heat.shape == (batch, 1, h // 4, w // 4)
    # the weights are untouched: the same outputs at the published size (to float rounding: the
    # freed file's weights are constants to the optimizer, the published file's are inputs)
    x = np.random.default_rng(0).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
    for a, b in zip(fixed.run(None, {name: x}), freed.run(None, {name: x})):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_something_that_is_no_onnx_model_is_refused():
    with pytest.raises(ValueError):
        free_dimensions(b"\x08\x01")  # a varint field, no graph
