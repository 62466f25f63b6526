import numpy as np
import torch

from mobilefer.data.augment import Augment, eval_transform, train_transform
from mobilefer.data.preprocess import normalize_batch, preprocess, to_base
from mobilefer.meta import ModelMeta


def meta(channels=1, base=48, size=112):
    return ModelMeta(arch="mobilenet_v3_small", classes=["a", "b"], input_size=size, channels=channels,
                     base_size=base, mean=[0.5] * channels, std=[0.25] * channels)


def test_numpy_eval_transform_equals_the_torch_one():
    rng = np.random.default_rng(0)
    for channels, base, size in ((1, 48, 112), (3, 40, 64), (1, 48, 48), (3, 96, 64)):
        m = meta(channels, base, size)
        base_images = rng.integers(0, 256, (5, base, base, channels), dtype=np.uint8)
        ours = normalize_batch(base_images, m)
        theirs = eval_transform(torch.from_numpy(base_images).permute(0, 3, 1, 2), m).numpy()
        assert ours.shape == (5, channels, size, size)
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_to_base_crops_square_converts_and_area_resizes():
    rgb = np.zeros((100, 60, 3), dtype=np.uint8)
    rgb[:, :, 0] = 255  # pure red -> luma 76
    out = to_base(rgb, 1, 48)
    assert out.shape == (48, 48, 1)
    assert int(out[10, 10, 0]) == 76


def test_preprocess_is_the_same_for_any_input_size_of_one_face():
    # a 48 px face and the same face at 192 px reach the network nearly alike
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (12, 12), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    big = face.repeat(4, 0).repeat(4, 1)
    a, b = preprocess([face], meta()), preprocess([big], meta())
    assert np.abs(a - b).max() < 1e-5


def test_train_transform_is_seeded_and_shaped():
    m = meta()
    x = torch.randint(0, 256, (8, 1, 48, 48), dtype=torch.uint8)
    a = train_transform(x, m, Augment(), torch.Generator().manual_seed(1))
    b = train_transform(x, m, Augment(), torch.Generator().manual_seed(1))
    c = train_transform(x, m, Augment(), torch.Generator().manual_seed(2))
    assert a.shape == (8, 1, 112, 112)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_identity_augment_equals_eval_transform():
    m = meta()
    x = torch.randint(0, 256, (4, 1, 48, 48), dtype=torch.uint8)
    still = Augment(scale=(1.0, 1.0), rotate=0.0, translate=0.0, flip=False, jitter=0.0, erase=0.0)
    out = train_transform(x, m, still, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, eval_transform(x, m), atol=1e-4, rtol=0)
