"""One thread budget for the process: explicit, environment, or the idle cores."""
import os

import pytest

from mobilefer import cores
from mobilefer.errors import ConfigError


def test_the_budget_is_explicit_then_environment_then_idle_cores(monkeypatch):
    assert cores.budget(3) == 3
    monkeypatch.setenv("MOBILEFER_THREADS", "2")
    assert cores.budget() == 2
    for bad in ("lots", "0", "-1", "2.5", "10000"):  # what --threads refuses, refused by name
        monkeypatch.setenv("MOBILEFER_THREADS", bad)
        with pytest.raises(ConfigError, match=r"\$MOBILEFER_THREADS=.*1 to 256 threads"):
            cores.budget()
    assert cores.budget(3) == 3  # a flag wins over the variable
    monkeypatch.setenv("MOBILEFER_THREADS", " ")  # empty: the idle cores
    monkeypatch.setattr(cores, "available", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    assert cores.budget() == 2  # 8 cores, 6 busy
    monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 20.0, 20.0))
    assert cores.budget() == 1  # never 0
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cores.budget() == cores.MAX_DEFAULT  # an idle big machine: capped


def test_a_cut_is_a_sudden_whole_picture_change_not_steady_motion():
    import numpy as np

    from mobilefer.inference.tracking import CutDetector

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    other = np.ascontiguousarray(scene[::-1] // 3)  # another, darker shot
    cuts = CutDetector()
    panning = [bool(cuts(np.roll(scene, 12 * i, axis=1))) for i in range(10)]  # the camera pans on
    assert not any(panning[2:])  # every frame changes alike: motion, not a cut
    still = CutDetector()
    flags = [still(scene), still(scene), still(scene), still(other), still(other)]
    assert flags == [False, False, False, True, False]
