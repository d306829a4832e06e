"""SimCLR-style image augmentations on batched tensors, on any device (no torchvision).

The recipe of SimCLR (Chen et al. 2020), used by the Kernel-InfoNCE paper's experiments: random
resized crop (area fraction in ``crop_scale``, aspect ratio log-uniform in ``ratio``), horizontal
flip, colour jitter (brightness, contrast, and saturation on RGB) applied with probability
``jitter_prob``, random grayscale (RGB only), Gaussian blur (sigma uniform in ``blur_sigma``,
kernel about 10% of the image side) with probability ``blur_prob``, additive Gaussian noise.

Every sample of the batch draws its own parameters; crop and flip are one ``affine_grid`` +
``grid_sample``, the blur one grouped convolution. All random numbers come from ``generator``
(or torch's default generator of the batch's device), so a seeded generator reproduces a batch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SimCLRAugment", "to_image_tensor", "gaussian_kernel1d"]


def to_image_tensor(images, device=None, dtype=torch.float32) -> Tensor:
    """uint8 images (N x H x W or N x H x W x C, numpy or torch) -> float (N x C x H x W) in [0, 1]."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if t.ndim == 3:
        t = t[:, None]
    elif t.ndim == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    elif t.ndim != 4:
        raise ValueError(f"images must be N x H x W or N x H x W x C, got shape {tuple(t.shape)}")
    scale = 255.0 if t.dtype == torch.uint8 else 1.0
    return (t.to(device=device, dtype=dtype) / scale).contiguous()


def resize_images(images: Tensor, size: int) -> Tensor:
    """(N x C x H x W) images resized to size x size by antialiased bilinear interpolation (a
    low-resolution copy of a data set for CPU budgets); same dtype range as given, as floats."""
    x = images.float() if not images.is_floating_point() else images
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def gaussian_kernel1d(sigma: Tensor, size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels (len(sigma) x size), one per sigma, centred."""
    r = torch.arange(size, device=sigma.device, dtype=sigma.dtype) - (size - 1) / 2
    k = torch.exp(-0.5 * (r[None, :] / sigma[:, None]) ** 2)
    return k / k.sum(1, keepdim=True)


def _pair(v, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v[0]), float(v[1]))
        if len(v) != 2:
            raise TypeError
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{name} must be a pair (low, high), got {v!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a finite pair with low <= high, got {v!r}")
    return lo, hi


def _prob(v, name: str) -> float:
    p = float(v)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    return p


class SimCLRAugment:
    """Random augmentation of a float image batch (B x C x H x W, values in [0, 1]).

    ``size``: output side (int or (h, w)); ``None`` keeps the input's size. ``flip``: True for a
    horizontal flip with probability 0.5 (or a probability). ``jitter``: strength s of brightness,
    contrast and saturation jitter (factors uniform in [1 - s, 1 + s]); 0 disables it.
    ``noise_std``: std of additive Gaussian noise. The output is clamped to [0, 1] and has the
    input's device and dtype.

    ``aug(x, generator=g)`` -> one augmented view; ``aug.views(x, n)`` -> n independent views.
    """

    def __init__(self, size=None, crop_scale=(0.2, 1.0), flip=True, jitter=0.4, blur_prob=0.5,
                 noise_std=0.0, *, ratio=(3 / 4, 4 / 3), jitter_prob=0.8, gray_prob=0.2,
                 blur_sigma=(0.1, 2.0), blur_kernel=None):
        if size is None:
            self.size = None
        else:
            hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
            if len(hw) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in hw):
                raise ValueError(f"size must be a positive int or a pair of them, got {size!r}")
            self.size = (int(hw[0]), int(hw[1]))
        self.crop_scale = _pair(crop_scale, "crop_scale")
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1 (area fractions), got {crop_scale!r}")
        self.ratio = _pair(ratio, "ratio")
        if self.ratio[0] <= 0:
            raise ValueError(f"ratio must be positive, got {ratio!r}")
        self.flip_prob = 0.5 if flip is True else (0.0 if flip is False else _prob(flip, "flip"))
        self.jitter = float(jitter)
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must lie in [0, 1), got {jitter!r}")
        self.jitter_prob = _prob(jitter_prob, "jitter_prob")
        self.gray_prob = _prob(gray_prob, "gray_prob")
        self.blur_prob = _prob(blur_prob, "blur_prob")
        self.blur_sigma = _pair(blur_sigma, "blur_sigma")
        if self.blur_sigma[0] <= 0:
            raise ValueError(f"blur_sigma must be positive, got {blur_sigma!r}")
        if blur_kernel is not None and (int(blur_kernel) < 1 or int(blur_kernel) % 2 == 0):
            raise ValueError(f"blur_kernel must be a positive odd int, got {blur_kernel!r}")
        self.blur_kernel = None if blur_kernel is None else int(blur_kernel)
        self.noise_std = float(noise_std)
        if not self.noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")

    def __repr__(self) -> str:
        return (f"SimCLRAugment(size={self.size}, crop_scale={self.crop_scale}, flip={self.flip_prob}, "
                f"jitter={self.jitter}, blur_prob={self.blur_prob}, noise_std={self.noise_std})")

    # random numbers -----------------------------------------------------------------------------
    @staticmethod
    def _rand(n: int, x: Tensor, generator, low: float = 0.0, high: float = 1.0) -> Tensor:
        dev = generator.device if generator is not None else x.device
        u = torch.rand(n, generator=generator, device=dev, dtype=torch.float32)
        return (low + (high - low) * u).to(x.device)

    def crop_boxes(self, n: int, x: Tensor, generator=None, tries: int = 10) -> Tensor:
        """(n x 4) boxes (cx, cy, w, h): centre in normalised [-1, 1] coordinates, w and h as fractions
        of the image's width and height (area fraction w * h, pixel aspect ratio w W / (h H)). As
        torchvision's RandomResizedCrop: up to ``tries`` (area, ratio) draws per sample, the first
        that fits inside the image is kept, the whole image otherwise."""
        aspect = x.shape[-2] / x.shape[-1]  # H / W
        lo, hi = self.crop_scale
        area = self._rand(n * tries, x, generator, lo, hi).view(n, tries)
        r = torch.exp(self._rand(n * tries, x, generator, math.log(self.ratio[0]), math.log(self.ratio[1]))).view(n, tries)
        w, h = torch.sqrt(area * r * aspect), torch.sqrt(area / r / aspect)
        fits = (w <= 1) & (h <= 1)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(n, dtype=torch.long, device=x.device))
        pick = lambda t: t.gather(1, first[:, None])[:, 0]  # noqa: E731
        w = torch.where(fits.any(1), pick(w), torch.ones(n, device=x.device))
        h = torch.where(fits.any(1), pick(h), torch.ones(n, device=x.device))
        cx = (self._rand(n, x, generator) * 2 - 1) * (1 - w)
        cy = (self._rand(n, x, generator) * 2 - 1) * (1 - h)
        return torch.stack([cx, cy, w, h], 1)

    # the transforms -------------------------------------------------------------------------------
    def _crop_flip(self, x: Tensor, generator) -> Tensor:
        B, C, H, W = x.shape
        out_hw = self.size or (H, W)
        box = self.crop_boxes(B, x, generator)
        flip = self._rand(B, x, generator) < self.flip_prob
        sx = torch.where(flip, -box[:, 2], box[:, 2])
        theta = torch.zeros(B, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = sx, box[:, 0]
        theta[:, 1, 1], theta[:, 1, 2] = box[:, 3], box[:, 1]
        identity = self.crop_scale == (1.0, 1.0) and out_hw == (H, W)  # every box is the whole image
        if identity and self.flip_prob == 0.0:
            return x
        if identity:  # exact flips, no resampling
            return torch.where(flip[:, None, None, None], x.flip(-1), x)
        grid = F.affine_grid(theta, [B, C, *out_hw], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _color(self, x: Tensor, generator) -> Tensor:
        B, C = x.shape[:2]
        s = self.jitter
        if s > 0 and self.jitter_prob > 0:
            on = (self._rand(B, x, generator) < self.jitter_prob).to(x.dtype)[:, None, None, None]
            b = self._rand(B, x, generator, 1 - s, 1 + s)[:, None, None, None]
            c = self._rand(B, x, generator, 1 - s, 1 + s)[:, None, None, None]
            sat = self._rand(B, x, generator, 1 - s, 1 + s)[:, None, None, None]
            y = (x * b).clamp(0, 1)
            gray = _grayscale(y)
            mean = gray.mean((1, 2, 3), keepdim=True)
            y = ((y - mean) * c + mean).clamp(0, 1)
            if C == 3:
                y = ((y - _grayscale(y)) * sat + _grayscale(y)).clamp(0, 1)
            x = on * y + (1 - on) * x
        if C == 3 and self.gray_prob > 0:
            g = (self._rand(B, x, generator) < self.gray_prob)[:, None, None, None]
            x = torch.where(g, _grayscale(x).expand_as(x), x)
        return x

    def _blur(self, x: Tensor, generator) -> Tensor:
        B, C, H, W = x.shape
        if self.blur_prob <= 0:
            return x
        k = self.blur_kernel or max(3, int(0.1 * min(H, W)) // 2 * 2 + 1)
        sigma = self._rand(B, x, generator, *self.blur_sigma)
        on = self._rand(B, x, generator) < self.blur_prob
        ker = gaussian_kernel1d(sigma.to(torch.float32), k).to(x.dtype)
        delta = torch.zeros_like(ker)
        delta[:, k // 2] = 1
        ker = torch.where(on[:, None], ker, delta).repeat_interleave(C, 0)  # (B*C) x k
        pad = k // 2
        y = x.reshape(1, B * C, H, W)
        mode = "reflect" if pad < min(H, W) else "replicate"
        y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode=mode), ker[:, None, None, :], groups=B * C)
        y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode=mode), ker[:, None, :, None], groups=B * C)
        return y.reshape(B, C, H, W)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"SimCLRAugment expects a float tensor B x C x H x W in [0, 1], got {got}; "
                             "convert uint8 images with iconlearn.data.augment.to_image_tensor")
        if x.shape[0] == 0:
            return x if self.size is None else x.new_empty(0, x.shape[1], *self.size)
        dtype = x.dtype
        y = x.float() if dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu" else x
        y = self._crop_flip(y, generator)
        y = self._color(y, generator)
        y = self._blur(y, generator)
        if self.noise_std > 0:
            dev = generator.device if generator is not None else y.device
            noise = torch.randn(y.shape, generator=generator, device=dev, dtype=torch.float32)
            y = y + self.noise_std * noise.to(device=y.device, dtype=y.dtype)
        return y.clamp(0, 1).to(dtype)

    def views(self, x: Tensor, n_views: int = 2, generator: torch.Generator | None = None) -> list[Tensor]:
        """``n_views`` independent augmentations of the same batch (SimCLR's positive pairs)."""
        return [self(x, generator) for _ in range(n_views)]


def _grayscale(x: Tensor) -> Tensor:
    """Luma (ITU-R 601) of an RGB batch, or the image itself for one channel; B x 1 x H x W."""
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
        return (x * w[None, :, None, None]).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)
