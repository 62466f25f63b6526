"""Export a checkpoint to one self-contained ONNX file (optionally INT8) and verify it; the
``ExportConfig`` and ``export()`` every format goes through (LiteRT: :mod:`.litert`).

The file carries the model's full metadata in ``metadata_props`` and a dynamic batch
axis. Verification: ``onnx.checker``, then ONNX Runtime against PyTorch on face-like
inputs (calibration images when given) - the max abs difference of probabilities.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilefer.atomic import atomic_path, check_output_file
from mobilefer.cores import THREADS_RULE
from mobilefer.errors import ConfigError, MobileferError, check_fields, whole
from mobilefer.meta import BUFFERS_KEY, METADATA_KEY, ModelMeta
from mobilefer.quiet import others_quiet

log = logging.getLogger(__name__)

FP32_TOLERANCE = 1e-4  # ONNX Runtime and LiteRT alike
# An INT8 model that disagrees with its fp32 source on more than 1 face in 20 is not a faithful copy.
INT8_MIN_AGREEMENT = 0.95
# Hardswish needs opset 14; 20 is the newest the TorchScript exporter writes.
OPSETS = range(14, 21)


@dataclass
class ExportConfig:
    model: str | None = None  # bundled name or .safetensors (.pth with classes); None: the default model
    out: str = ""
    format: str | None = None  # "onnx" or "tflite" (LiteRT); default: from the --out suffix
    opset: int = 17
    int8: bool = False  # static INT8 (QDQ), calibrated on calib_data
    calib_data: str | None = None
    calib_count: int = 512
    check_count: int = 64
    classes: list[str] | None = None  # for plain .pth state_dicts
    threads: int | None = None  # PyTorch and ONNX Runtime threads; default: the idle cores, up to 4

    def __post_init__(self) -> None:
        suffix = {"onnx": ".onnx", "tflite": ".tflite"}
        if self.format is None:
            self.format = next((f for f, s in suffix.items() if str(self.out).endswith(s)), "onnx")
        if self.format not in suffix:
            raise ConfigError(f"--format {self.format!r}: expected onnx or tflite")
        if not str(self.out).endswith(suffix[self.format]):
            raise ConfigError(f"--out {self.out or '(none)'}: expected a {suffix[self.format]} file name "
                              f"for --format {self.format}")
        check_output_file(self.out, "--out")
        check_fields(self, {
            "opset": (lambda v: v in OPSETS, f"an ONNX opset from {OPSETS[0]} to {OPSETS[-1]}"),
            "check_count": (whole(1), "at least 1 image"),
        })
        check_calibration(self)


def check_calibration(config) -> None:
    """The flags every export that may quantise takes (ExportConfig, the web site's SiteConfig):
    calib_count, threads, and --int8 only with --calib-data."""
    check_fields(config, {
        "calib_count": (whole(1), "at least 1 image"),
        "threads": THREADS_RULE,
    })
    if config.int8 and not config.calib_data:
        raise ConfigError("--int8 needs --calib-data: images to calibrate activation ranges on")


@dataclass
class ExportReport:
    path: Path
    bytes: int
    max_abs_diff: float  # probabilities, ONNX Runtime vs PyTorch, on the check inputs
    label_agreement: float  # share of check inputs with the same top class
    num_checked: int
    int8: bool
    calibration: str = ""  # what INT8 ranges were calibrated on
    warning: str = ""  # set when the INT8 model agrees with PyTorch too rarely to ship as is

    @property
    def check(self) -> str:
        """The verification as one line, as `mobilefer export` prints it."""
        runtime = "tflite" if self.path.suffix == ".tflite" else "onnx"
        return (f"check on {self.num_checked} inputs: max |p_{runtime} - p_torch| = {self.max_abs_diff:.2e}, "
                f"same top class {self.label_agreement:.1%}")


def _check_inputs(meta: ModelMeta, calib_data: str | None, count: int, seed: int = 0) -> np.ndarray:
    """Network inputs for verification/calibration: real images if given, else smooth noise."""
    from mobilefer.data.preprocess import normalize_batch

    if calib_data:
        from mobilefer.data.readers import load_images

        from mobilefer.inference.detectors import LargestFaceCrop

        # a model that saw faces cut from photos is calibrated and checked on such faces
        data = load_images(calib_data, channels=meta.channels, base_size=meta.base_size, limit=count, seed=seed,
                           crop=LargestFaceCrop.for_model(meta))
        return normalize_batch(data.images, meta)
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(count, 6, 6, meta.channels), dtype=np.uint8)
    base = np.stack([cv2.resize(c, (meta.base_size,) * 2, interpolation=cv2.INTER_CUBIC) for c in coarse])
    return normalize_batch(base.reshape(count, meta.base_size, meta.base_size, meta.channels), meta)


def _buffers(model, raw: Path) -> dict[str, dict]:
    """What the exported file ``raw`` lacks of the model's state, for its metadata, so that its
    weights come back whole: ``ints``, the whole-number scalars no forward pass reads
    (BatchNorm's num_batches_tracked), and ``same_as``, tensors the exporter stored once for
    several names because their values are equal (an untrained model's BatchNorm statistics)."""
    import onnx
    import torch

    stored = {t.name for t in onnx.load(str(raw)).graph.initializer}
    state = model.state_dict()
    ints, same_as = {}, {}
    for name, value in state.items():
        if name in stored:
            continue
        if value.ndim == 0 and not value.is_floating_point():
            ints[name] = int(value)
            continue
        twin = next((k for k in stored if k in state and state[k].shape == value.shape
                     and torch.equal(state[k], value)), None)
        if twin is None:
            raise MobileferError(f"the export lost the model's tensor {name}; its weights could not come back")
        same_as[name] = twin
    return {"ints": ints, "same_as": same_as}


def _attach_metadata(onnx_path: Path, meta: ModelMeta, out: Path, buffers: dict | None = None) -> None:
    import onnx

    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    if buffers:
        entry = model.metadata_props.add()
        entry.key, entry.value = BUFFERS_KEY, json.dumps(buffers, sort_keys=True)
    for key, value in (("classes", ",".join(meta.classes)), ("arch", meta.arch)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "mobilefer"
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(out) as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=False)


class _Calibration:
    """onnxruntime CalibrationDataReader over preprocessed images."""

    def __init__(self, inputs: np.ndarray, name: str, batch: int = 16) -> None:
        # equal batches only: the histogram calibrators stack per-batch outputs
        inputs = inputs[: max(batch, len(inputs) // batch * batch)]
        self.batches = iter([{name: inputs[i : i + batch]} for i in range(0, len(inputs), batch)])

    def get_next(self):
        return next(self.batches, None)


def export_onnx(model: str | Path | None, out: str | Path, **options) -> ExportReport:
    """Export ``model`` (bundled name, .safetensors, .pth with ``classes``) to ``out`` (.onnx);
    ``options`` are :class:`ExportConfig` fields."""
    return export(ExportConfig(model=None if model is None else str(model), out=str(out), **options))


def export(config: ExportConfig) -> ExportReport:
    """What ``mobilefer export`` runs: write ``config.out`` in its format and verify it against PyTorch."""
    from mobilefer.errors import require
    from mobilefer.runtime.classifier import require_torch

    require_torch("export", "export")
    if config.format == "tflite":
        require("litert_torch", "litert", "export --format tflite")
    else:
        require("onnx", "export", "export")
    import torch

    from mobilefer import cores
    from mobilefer.checkpoint import load_model
    from mobilefer.runtime import resolve_model

    cores.limit_torch(config.threads)
    out = Path(config.out)
    model, meta = load_model(resolve_model(config.model, torch_weights=True).path, classes=config.classes)
    example = torch.zeros(1, meta.channels, meta.input_size, meta.input_size)
    calib = _check_inputs(meta, config.calib_data, config.calib_count) if config.int8 else None
    kind = "INT8" if calib is not None else "fp32"
    if config.format == "tflite":
        from mobilefer.export.litert import write_litert
        from mobilefer.runtime.litert import LiteRTClassifier

        log.info("converting %s to LiteRT %s with litert-torch (~15-30 s on 2 cores; -v shows its own log) ...",
                 meta.arch, kind)
        with others_quiet():
            write_litert(model, meta, example, calib, out)
        runtime = LiteRTClassifier
    else:
        from mobilefer.runtime import OnnxClassifier

        log.info("exporting %s to ONNX %s%s ...", meta.arch, kind,
                 f", calibrating on {len(calib)} images" if calib is not None else "")
        _write_onnx(model, meta, example, calib, config.opset, out)
        runtime = OnnxClassifier
    log.info("checking %s against PyTorch ...", out.name)
    calibration = f"{len(calib)} images of {config.calib_data}" if config.int8 else ""
    return verify(model, meta, out, lambda: runtime(out, threads=config.threads), config, calibration)


def _write_onnx(model, meta: ModelMeta, example, calib: np.ndarray | None, opset: int, out: Path) -> None:
    """``model`` as one ONNX file with its metadata; INT8 (QDQ) calibrated on ``calib`` when given."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        # BatchNorms kept as nodes, not folded into the convolutions: the file's weights are the
        # model's own tensors under their own names, so its PyTorch weights come back from it
        # bit for bit (runtime.derive.weights_from_onnx); ONNX Runtime folds them when it loads.
        torch.onnx.export(
            model, (example,), str(raw), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset, dynamo=False,
            training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
        )
        unquantized = raw
        if calib is not None:
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
            from onnxruntime.quantization.shape_inference import quant_pre_process

            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(raw), str(prepared), skip_symbolic_shape=True)
            quantized = Path(tmp) / "int8.onnx"
            settings = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
            try:
                # 99.99th percentile ranges: robust to a few outlier activations
                with others_quiet():  # its calibration prints its steps
                    quantize_static(str(prepared), str(quantized), _Calibration(calib, "input"),
                                    calibrate_method=CalibrationMethod.Percentile,
                                    extra_options={"CalibPercentile": 99.99}, **settings)
            except (ValueError, TypeError) as exc:  # histograms fail on constant activations
                log.warning("percentile calibration failed (%s); using min/max ranges", exc)
                with others_quiet():
                    quantize_static(str(prepared), str(quantized), _Calibration(calib, "input"),
                                    calibrate_method=CalibrationMethod.MinMax, **settings)
            raw = quantized
        _attach_metadata(raw, meta, out, _buffers(model, unquantized))


def verify(model, meta: ModelMeta, out: Path, open_runtime, config: ExportConfig, calibration: str) -> ExportReport:
    """The written file ``out`` (opened by ``open_runtime``) against the PyTorch ``model`` on
    ``config.check_count`` faces: fp32 must agree within FP32_TOLERANCE (else the file is
    removed), INT8 is reported with what it was calibrated on and warned about under
    INT8_MIN_AGREEMENT. A file that cannot be opened or run is removed too."""
    import torch

    inputs = _check_inputs(meta, config.calib_data, config.check_count, seed=1)
    try:
        runtime = open_runtime()
        runtime.meta.tta, runtime.meta.prior_correction = "none", 0.0  # compare the networks themselves
        got = runtime(inputs)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    with torch.inference_mode():
        expected = (model(torch.from_numpy(inputs)) / meta.temperature).softmax(1).numpy()
    diff = float(np.abs(got - expected).max())
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    name = "LiteRT" if config.format == "tflite" else "ONNX Runtime"
    if not config.int8 and diff >= FP32_TOLERANCE:
        out.unlink(missing_ok=True)
        raise MobileferError(f"{name} differs from PyTorch by {diff:.2e} (limit {FP32_TOLERANCE:.0e}); nothing written")
    report = ExportReport(out, out.stat().st_size, diff, agreement, len(inputs), config.int8)
    if config.int8:
        faces = ", faces cropped as predict crops them" if meta.config.get("crop_faces") else ""
        report.calibration = calibration + faces
        if agreement < INT8_MIN_AGREEMENT:
            report.warning = (f"the INT8 model picks the same class as PyTorch on only {agreement:.1%} of "
                              f"{len(inputs)} images (expected {INT8_MIN_AGREEMENT:.0%}+): calibrate on more images "
                              "like those it will see (--calib-data, --calib-count), or ship the fp32 model")
            log.warning(report.warning)
    return report
