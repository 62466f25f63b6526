"""Fit each bundled model's temperature on its validation data and write it into its ONNX
file's metadata (the weights are left as they are, byte for byte), with the FER+ models' prior
correction.

    python scripts/calibrate_bundled.py [--data ../shared/data] [--prior-correction [NAME=]TAU ...]
        [--models NAME ...] [--dry-run]

FER+ models on FER+ Valid (majority labels), FER2013 models on FER2013 PublicTest: the data
each model's epoch was chosen on, never a test split. The FER+ models' prior is each emotion's
share of FER+ Train's votes (what their soft labels taught), and their temperature is fitted with
the correction in place, as every runtime applies it. Prints accuracy, balanced accuracy and the
expected calibration error before and after.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VALIDATION = {"ferplus": "ferplus/ferplus_valid.zip", "fer2013": "fer2013/publictest.zip"}


def logits_views(path: Path, images: np.ndarray, meta) -> list[np.ndarray]:
    """The network's logits for each test-time view of ``images`` (uint8 base-size faces)."""
    import onnxruntime as ort

    from mobilefer.data.preprocess import normalize_batch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.concatenate([normalize_batch(images[i:i + 256], meta) for i in range(0, len(images), 256)])
    views = [x, x[..., ::-1].copy()] if meta.tta == "flip" else [x]
    return [np.concatenate([session.run(None, {name: v[i:i + 256]})[0] for i in range(0, len(v), 256)])
            for v in views]


def write_meta(path: Path, **fields) -> None:
    """``fields`` (temperature, prior, prior_correction) set in the ONNX file's metadata."""
    import onnx

    from mobilefer.atomic import atomic_path
    from mobilefer.meta import METADATA_KEY, ModelMeta

    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    meta = ModelMeta.from_json(entry.value)
    for name, value in fields.items():
        setattr(meta, name, value)
    meta.__post_init__()
    entry.value = meta.to_json()
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))


def main() -> None:
    from mobilefer.data.readers import load_images
    from mobilefer.engine.calibrate import fit_temperature, probabilities
    from mobilefer.engine.metrics import calibration, score
    from mobilefer.runtime import BUNDLED, read_onnx_meta, resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--prior-correction", action="append", default=[], metavar="[NAME=]TAU",
                        help="the FER+ models' ModelMeta.prior_correction: TAU for each, or NAME=TAU for "
                             "one (repeat it; default: the correction each model carries; 0: none)")
    parser.add_argument("--models", nargs="+", choices=sorted(BUNDLED), help="only these (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    args = parser.parse_args()
    taus, default_tau = {}, None
    for item in args.prior_correction:
        name, _, value = item.rpartition("=")
        try:
            tau = float(value)
        except ValueError:
            parser.error(f"--prior-correction {item!r}: expected TAU or NAME=TAU")
        if name and name not in BUNDLED:
            parser.error(f"--prior-correction {item!r}: no bundled model {name!r}")
        if name:
            taus[name] = tau
        else:
            default_tau = tau
    print("| model | data | temperature | accuracy | balanced | ECE before | ECE after |")
    print("|---|---|---|---|---|---|---|")
    priors = {}  # FER+ Train's vote shares, read once for the models that read faces alike
    for name in sorted(args.models or BUNDLED):
        path = resolve_model(name).path
        meta = read_onnx_meta(path)
        data_path = args.data / VALIDATION[name.split("-")[0]]
        usage = "PublicTest" if name.startswith("fer2013") and data_path.suffix == ".csv" else None
        data = load_images(str(data_path), usage=usage, channels=meta.channels, base_size=meta.base_size,
                           classes=meta.classes)
        views = logits_views(path, data.images, meta)
        fields = {}
        if name.startswith("ferplus"):
            key = (meta.channels, meta.base_size, tuple(meta.classes))
            if key not in priors:
                priors[key] = load_images(str(args.data / "ferplus/ferplus_train.zip"), labels="soft",
                                          channels=meta.channels, base_size=meta.base_size, classes=meta.classes).prior()
            tau = taus.get(name, meta.prior_correction if default_tau is None else default_tau)
            fields = {"prior": priors[key], "prior_correction": tau}
            meta.prior, meta.prior_correction = fields["prior"], fields["prior_correction"]
        weights = meta.class_weights()
        before = probabilities(views, 1.0, weights)
        temperature = fit_temperature(views, data.labels, weights)
        after = probabilities(views, temperature, weights)
        result, ece = score(data.labels, after.argmax(1), meta.classes), calibration(after, data.labels)["ece"]
        print(f"| {name} | {data_path.name} ({len(data)}) | {temperature} | {result['accuracy']:.3f} | "
              f"{result['balanced_accuracy']:.3f} | {calibration(before, data.labels)['ece']:.3f} | "
              f"{ece:.3f} |", flush=True)
        if fields:  # the scores the model now gives, in place of its epoch's uncorrected ones
            fields["metrics"] = {**meta.metrics, **result, "temperature": temperature, "ece": round(ece, 4)}
        if not args.dry_run and (temperature != meta.temperature or fields):
            write_meta(path, temperature=temperature, **fields)


if __name__ == "__main__":
    main()
