"""SimCLRAugment: shapes, determinism, and each transform against a float64 scipy/numpy reference."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from iconlearn.data.augment import SimCLRAugment, gaussian_kernel1d, to_image_tensor

OFF = dict(crop_scale=(1.0, 1.0), flip=False, jitter=0.0, blur_prob=0.0, noise_std=0.0, gray_prob=0.0)


def _batch(b=6, c=1, h=28, w=28, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("c,size", [(1, None), (3, None), (1, 20), (3, (16, 24))])
def test_shape_dtype_range(c, size):
    x = _batch(c=c)
    y = SimCLRAugment(size, noise_std=0.1)(x)
    hw = x.shape[-2:] if size is None else ((size, size) if isinstance(size, int) else size)
    assert y.shape == (x.shape[0], c, *hw) and y.dtype == x.dtype and y.device == x.device
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_keeps_dtype(dtype):
    y = SimCLRAugment(28)(_batch().to(dtype))
    assert y.dtype == dtype


def test_seeded_generator_reproduces_and_views_differ():
    x, aug = _batch(), SimCLRAugment(28, noise_std=0.05)
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    c = aug(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    v1, v2 = aug.views(x, 2, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(v1, v2)


def test_all_off_is_identity():
    x = _batch(c=3)
    assert torch.equal(SimCLRAugment(None, **OFF)(x), x)


def test_flip_only_gives_x_or_mirror():
    x = _batch(b=64)
    y = SimCLRAugment(None, **{**OFF, "flip": True})(x, generator=torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54


def test_crop_boxes_respect_scale_ratio_and_image():
    aug = SimCLRAugment(None, crop_scale=(0.2, 0.6), ratio=(0.5, 2.0))
    x = torch.zeros(1, 1, 20, 40)  # non-square: H / W = 0.5
    box = aug.crop_boxes(4000, x, torch.Generator().manual_seed(0)).double()
    cx, cy, w, h = box.T
    area = w * h
    fits = (w <= 1) & (h <= 1)
    assert bool(fits.all())
    assert ((area >= 0.2 - 1e-6) & (area <= 0.6 + 1e-6)).float().mean() > 0.99  # fallback is rare
    pixel_ratio = (w * 40) / (h * 20)
    ok = (area < 0.999)
    assert bool(((pixel_ratio[ok] >= 0.5 - 1e-5) & (pixel_ratio[ok] <= 2.0 + 1e-5)).all())
    assert bool((cx.abs() + w <= 1 + 1e-6).all() and (cy.abs() + h <= 1 + 1e-6).all())


def _reference_crop(img, box, out_hw, flip):
    """Bilinear resampling of img (H x W) inside box, with border clamping, in float64 (scipy)."""
    H, W = img.shape
    cx, cy, w, h = box
    u = (2 * np.arange(out_hw[1]) + 1) / out_hw[1] - 1
    v = (2 * np.arange(out_hw[0]) + 1) / out_hw[0] - 1
    xs = cx + (-w if flip else w) * u
    ys = cy + h * v
    px = ((xs + 1) * W - 1) / 2
    py = ((ys + 1) * H - 1) / 2
    PY, PX = np.meshgrid(py, px, indexing="ij")
    return ndimage.map_coordinates(img.astype(np.float64), [PY, PX], order=1, mode="nearest")


@pytest.mark.parametrize("flip", [False, True])
def test_crop_matches_bilinear_reference(monkeypatch, flip):
    x = _batch(b=3, h=20, w=24, seed=1).double()
    boxes = torch.tensor([[0.1, -0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [-0.3, 0.4, 0.7, 0.3]], dtype=torch.float64)
    aug = SimCLRAugment((12, 16), **{**OFF, "crop_scale": (0.1, 1.0), "flip": 1.0 if flip else 0.0})
    monkeypatch.setattr(aug, "crop_boxes", lambda n, x, g=None: boxes)
    y = aug(x)
    for i in range(3):
        ref = _reference_crop(x[i, 0].numpy(), boxes[i].numpy(), (12, 16), flip)
        np.testing.assert_allclose(y[i, 0].numpy(), np.clip(ref, 0, 1), atol=1e-10)


def test_blur_matches_scipy_convolution():
    x = _batch(b=2, c=3, h=17, w=19).double()
    sigma = 1.3
    aug = SimCLRAugment(None, **{**OFF, "blur_prob": 1.0}, blur_sigma=(sigma, sigma), blur_kernel=5)
    y = aug(x)
    r = np.arange(5) - 2.0
    k = np.exp(-0.5 * (r / sigma) ** 2)
    k /= k.sum()
    for i in range(2):
        for c in range(3):
            ref = ndimage.convolve1d(x[i, c].numpy(), k, axis=1, mode="mirror")
            ref = ndimage.convolve1d(ref, k, axis=0, mode="mirror")
            np.testing.assert_allclose(y[i, c].numpy(), ref, atol=1e-12)


def test_gaussian_kernel1d_is_normalised_and_symmetric():
    k = gaussian_kernel1d(torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64), 7)
    torch.testing.assert_close(k.sum(1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(k, k.flip(1))


def test_jitter_on_constant_image_scales_brightness_only():
    s, c = 0.4, 0.5
    x = torch.full((200, 1, 8, 8), c, dtype=torch.float64)
    y = SimCLRAugment(None, **{**OFF, "jitter": s}, jitter_prob=1.0)(x, generator=torch.Generator().manual_seed(0))
    per = y.flatten(1)
    assert torch.allclose(per, per[:, :1].expand_as(per))  # contrast leaves a flat image flat
    v = per[:, 0]
    assert v.min() >= c * (1 - s) - 1e-12 and v.max() <= c * (1 + s) + 1e-12 and v.std() > 0.02


def test_gray_prob_one_makes_rgb_gray():
    x = _batch(c=3)
    y = SimCLRAugment(None, **{**OFF, "gray_prob": 1.0})(x)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(y[:, 0], luma)


def test_noise_std():
    x = torch.full((64, 1, 32, 32), 0.5)
    y = SimCLRAugment(None, **{**OFF, "noise_std": 0.05})(x, generator=torch.Generator().manual_seed(0))
    assert math.isclose(float((y - x).std()), 0.05, rel_tol=0.05)


def test_empty_batch():
    y = SimCLRAugment(16)(torch.zeros(0, 1, 28, 28))
    assert y.shape == (0, 1, 16, 16)


def test_to_image_tensor():
    imgs = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    t = to_image_tensor(imgs)
    assert t.shape == (2, 1, 4, 5) and t.dtype == torch.float32
    torch.testing.assert_close(t[0, 0], torch.tensor(imgs[0] / 255.0, dtype=torch.float32))
    assert to_image_tensor(np.zeros((2, 6, 6, 3), np.uint8)).shape == (2, 3, 6, 6)
    with pytest.raises(ValueError, match="N x H x W"):
        to_image_tensor(np.zeros(5, np.uint8))


@pytest.mark.parametrize("x,match", [
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "float tensor"),
    (torch.zeros(1, 8, 8), "B x C x H x W"),
    (np.zeros((2, 1, 8, 8)), "ndarray"),
])
def test_rejects_bad_batches(x, match):
    with pytest.raises(ValueError, match=match):
        SimCLRAugment(8)(x)


@pytest.mark.parametrize("kw,match", [
    (dict(crop_scale=(0.5, 0.2)), "crop_scale"),
    (dict(crop_scale=(0.0, 1.0)), "crop_scale"),
    (dict(crop_scale=3), "crop_scale"),
    (dict(size=0), "size"),
    (dict(size=(2, 3, 4)), "size"),
    (dict(jitter=1.5), "jitter"),
    (dict(blur_prob=2.0), "blur_prob"),
    (dict(flip=1.5), "flip"),
    (dict(noise_std=-1.0), "noise_std"),
    (dict(blur_kernel=4), "blur_kernel"),
    (dict(blur_sigma=(0.0, 1.0)), "blur_sigma"),
])
def test_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        SimCLRAugment(**{"size": 8, **kw})
