"""Resumable training state (optimizer, epoch, history) in safetensors + JSON, no pickle."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mobilefer.atomic import atomic_path

_KEY = "mobilefer_train_state"


def save_state(path: str | Path, optimizer: torch.optim.Optimizer, info: dict[str, Any],
               extra: dict[str, torch.Tensor] | None = None) -> None:
    """Write the optimizer's tensors, ``extra`` tensors (e.g. averaged weights) and ``info``
    (JSON-able: epoch, history, ...) atomically."""
    from safetensors.torch import save_file

    opt = optimizer.state_dict()
    tensors = {f"extra.{k}": v.detach().to("cpu").contiguous() for k, v in (extra or {}).items()}
    plain: dict[str, dict[str, Any]] = {}
    for pid, slots in opt["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{slot}"] = value.detach().to("cpu").contiguous()
            else:
                plain.setdefault(str(pid), {})[slot] = value
    header = {"info": info, "param_groups": opt["param_groups"], "plain_state": plain}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_KEY: json.dumps(header)})


def load_state(path: str | Path, optimizer: torch.optim.Optimizer,
               extra: dict[str, torch.Tensor] | None = None, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore the optimizer from ``path`` and copy saved extra tensors into ``extra``'s
    (which must all be there); return the saved ``info``. ``expect``: what ``info["run"]``
    must be (a state file saved by another run is refused, before any step)."""
    from safetensors import SafetensorError, safe_open

    from mobilefer.errors import ModelFileError
    from mobilefer.runtime.files import read_safetensors_metadata

    read_safetensors_metadata(path)  # a cut file fails here, naming it
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads(handle.metadata()[_KEY])
            theirs = header["info"].get("run")
            if expect is not None and theirs is not None and theirs != expect:
                raise ModelFileError(f"{path}: the training state of another run ({theirs.get('arch')}, classes "
                                     f"{', '.join(theirs.get('classes', []))}, other data or settings); "
                                     "resume the run it came from, or start a new one")
            for key in handle.keys():  # the optimizer's moments must fit these weights, or a step fails later
                if key.startswith("state."):
                    _, pid, _ = key.split(".", 2)
                    shape = tuple(handle.get_slice(key).get_shape())
                    if int(pid) >= len(params) or (shape and shape != tuple(params[int(pid)].shape)):
                        raise ModelFileError(f"{path}: the training state of another run (its optimizer holds "
                                             "other weights' shapes); resume the run it came from, or start a new one")
            state: dict[int, dict[str, Any]] = {}
            for name, tensor in (extra or {}).items():
                tensor.copy_(handle.get_tensor(f"extra.{name}"))
            for key in handle.keys():
                if key.startswith("extra."):
                    continue
                _, pid, slot = key.split(".", 2)
                state.setdefault(int(pid), {})[slot] = handle.get_tensor(key)
        for pid, slots in header["plain_state"].items():
            state.setdefault(int(pid), {}).update(slots)
        optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    except ModelFileError:
        raise
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: damaged training state ({str(exc)[:200]}); "
                             "the run cannot be resumed, start a new one") from None
    return header["info"]
