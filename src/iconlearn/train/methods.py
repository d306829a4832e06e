"""The contrastive methods as choices of p and q (I-Con Table 1), built from a config's ``method``.

Every method takes the two views' projections of a batch and returns the I-Con loss:

* ``simclr``: :class:`iconlearn.losses.InfoNCE` (Gaussian kernel on the sphere);
* ``kernel_infonce``: :class:`iconlearn.losses.KernelInfoNCE` with the exponential kernels
  exp(-||x - y||^gamma / tau) of the Kernel-InfoNCE paper (Gaussian, Laplacian, any gamma, simple-sum
  and concatenation-sum mixtures, the latter in either form: ``method.mixture_form`` ``kernel``, one
  softmax over the mixture as the paper writes it, or ``loss``, lambda L_Laplace + (1 - lambda) L_Gauss
  as the authors' code trains it, lambda = ``method.mixture_lambda``);
* ``supcon``: :class:`iconlearn.losses.SupCon` on both views with the labels;
* ``gntxent``: :class:`iconlearn.losses.GeneralizedNTXent` of Calder and Lee (eq. 4).

With an EMA teacher (MoCo v3) or a queue (MoCo), the anchors are the student's (predicted)
projections of one view and the candidates the keys of the other view plus the queue:
p(j|i) is one-hot on the anchor's own key, q(j|i) the method's kernel normalised over the
candidates (:func:`key_contrast`); the loss is symmetrised over the two views.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import losses as L
from ..core import SparseRows, icon_loss
from ..distributed import gather
from .config import KERNELS, ConfigError

__all__ = ["build_loss", "Method", "key_contrast"]


def _preset(name: str):
    cls = getattr(L, name, None)
    if cls is None:
        raise ConfigError(f"iconlearn.losses has no {name} in this version; this method cannot be trained")
    return cls


def build_loss(method: dict, gather_distributed: bool = False) -> nn.Module:
    """The loss module of a validated config's ``method`` section."""
    name, tau = method["name"], method["temperature"]
    if name == "simclr":
        return L.InfoNCE(temperature=tau, gather_distributed=gather_distributed)
    if name == "supcon":
        return L.SupCon(temperature=tau, gather_distributed=gather_distributed)
    if name == "kernel_infonce":
        if method["kernel"] not in KERNELS:
            raise ConfigError(f"unknown kernel {method['kernel']!r}; choose one of {list(KERNELS)}")
        gamma, mixture = KERNELS[method["kernel"]]
        gamma = method["gamma"] if gamma is None else gamma
        form, lam = method["mixture_form"], method["mixture_lambda"]
        # (Laplacian, Gaussian) weights: (lambda, 1 - lambda) on the two losses, or on the two kernels
        # scaled so that lambda = 1/2 is their plain sum
        weights = None if mixture is None else (lam, 1 - lam) if form == "loss" else (2 * lam, 2 * (1 - lam))
        return _preset("KernelInfoNCE")(gamma=gamma, temperature=tau, mixture=mixture, form=form, weights=weights,
                                        gather_distributed=gather_distributed)
    if name == "gntxent":
        return _preset("GeneralizedNTXent")(temperature=tau, gather_distributed=gather_distributed)
    raise ConfigError(f"unknown method {name!r}")


def key_contrast(kernel, anchors: Tensor, keys: Tensor, extra: Tensor | None = None,
                 gather_distributed: bool = False) -> Tensor:
    """Mean over anchors of KL(p_i || q_i) with p_i one-hot on the anchor's own key and q_i the
    kernel's distribution over all (gathered) keys plus ``extra`` negatives (a queue)."""
    offset = 0
    if gather_distributed:
        keys, offset = gather(keys)
    candidates = keys if extra is None or extra.shape[0] == 0 else torch.cat([keys, extra.to(keys.dtype)])
    own = torch.arange(anchors.shape[0], device=anchors.device) + offset
    p = SparseRows(torch.ones(anchors.shape[0], 1, device=anchors.device, dtype=anchors.dtype), own[:, None])
    return icon_loss(p, kernel(anchors, candidates))


class Method(nn.Module):
    """The loss of one training step from the two views' outputs.

    ``forward(z1, z2, labels, k1=None, k2=None, extra=None)``: ``z1, z2`` the student's projections
    (or predictions) of the two views, ``k1, k2`` the keys (teacher projections) when the method uses
    keys, ``extra`` the queue's negatives.
    """

    def __init__(self, method: dict, gather_distributed: bool = False):
        super().__init__()
        self.name = method["name"]
        self.loss = build_loss(method, gather_distributed)
        self.gather_distributed = gather_distributed
        self.uses_keys = method["ema_decay"] is not None or method["queue_size"] > 0
        if self.uses_keys and getattr(self.loss, "kernel", None) is None:
            raise ConfigError(f"method {self.name!r} exposes no kernel, so it cannot use a teacher or a queue")

    def forward(self, z1: Tensor, z2: Tensor, labels: Tensor | None = None, k1: Tensor | None = None,
                k2: Tensor | None = None, extra: Tensor | None = None) -> Tensor:
        if self.name == "supcon":
            if labels is None:
                raise ValueError("method 'supcon' needs labels for the training images")
            return self.loss(torch.cat([z1, z2]), torch.cat([labels, labels]))
        if not self.uses_keys:
            return self.loss(z1, z2)
        k = self.loss.kernel
        return 0.5 * (key_contrast(k, z1, k2, extra, self.gather_distributed)
                      + key_contrast(k, z2, k1, extra, self.gather_distributed))
