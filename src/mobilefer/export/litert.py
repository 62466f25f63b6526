"""Write a checkpoint as a LiteRT (TensorFlow Lite) ``.tflite`` file for phones and embedded
devices, through litert-torch (``pip install 'mobilefer[litert]'``); ``export.onnx.export`` calls
it for ``--format tflite`` and verifies the file on the LiteRT interpreter as it verifies ONNX.

fp32: the network as it is. INT8: PyTorch 2 export quantisation (PT2E, symmetric, per-channel
weights, static activation ranges) calibrated on ``--calib-data`` images, lowered to int8
kernels by the converter. The graph takes one face (1 x C x H x W, float32, normalised as the
metadata says) and gives logits; the metadata rides in the file (:mod:`mobilefer.runtime.litert`).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobilefer.atomic import atomic_path

if TYPE_CHECKING:
    from mobilefer.meta import ModelMeta


def _quantize(model, example, calib: np.ndarray):
    """The PT2E-quantised module and its quantizer, calibrated on ``calib`` (N, C, H, W)."""
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    graph = torch.export.export(model, (example,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.inference_mode():
        for one in torch.from_numpy(calib).split(1):
            prepared(one)
    return convert_pt2e(prepared, fold_quantize=False), quantizer


def write_litert(model, meta: "ModelMeta", example, calib: np.ndarray | None, out: Path) -> None:
    """``model`` as one .tflite file with its metadata; INT8 calibrated on ``calib`` when given."""
    import litert_torch

    from mobilefer.runtime.litert import attach_meta

    litert_torch.config.show_progress = False  # its task tree would bury our three lines
    if calib is not None:
        from litert_torch.quantize.quant_config import QuantConfig

        quantized, quantizer = _quantize(model, example, calib)
        edge = litert_torch.convert(quantized, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    else:
        edge = litert_torch.convert(model, (example,))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.tflite"
        edge.export(str(raw))
        attach_meta(raw, meta)
        with atomic_path(out) as target:
            target.write_bytes(raw.read_bytes())
