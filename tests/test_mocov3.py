"""The MoCo v3 loss of the training loop against its formula (Chen, Xie and He 2021, "An empirical
study of training self-supervised vision transformers", Algorithm 1):

    ctr(q, k) = 2 tau * CE(q k^T / tau, labels = range(N)),   L = ctr(q1, k2) + ctr(q2, k1)

with q the student's predictions and k the momentum teacher's projections, both L2-normalised.
The loop's loss is the I-Con form, the mean over anchors of KL(one-hot on the own key || the
cosine kernel's q over the keys), symmetrised: 0.5 (CE(q1, k2) + CE(q2, k1)) = L / (4 tau); the
constant 2 tau of the paper (which makes the gradient scale insensitive to tau) is left out."""
import math

import pytest
import torch

from iconlearn.nn.ema import EMA
from iconlearn.train import build_model, pretrain, validate_config
from iconlearn.train.loop import _prepare_data, seed_of
from iconlearn.train.methods import Method
from refs import dot, logsumexp, randn, unit


def ref_mocov3(q1, q2, k1, k2, tau):
    """Algorithm 1 of the paper as float64 loops."""
    def ctr(q, k):
        q, k = [unit(v) for v in q], [unit(v) for v in k]
        n = len(q)
        ce = sum(-dot(q[i], k[i]) / tau + logsumexp([dot(q[i], k[j]) / tau for j in range(n)]) for i in range(n)) / n
        return 2 * tau * ce

    return ctr(q1, k2) + ctr(q2, k1)


def mocov3_method(tau):
    cfg = validate_config({"method": {"name": "simclr", "temperature": tau, "ema_decay": 0.99},
                           "model": {"predictor": True}})
    return Method(cfg["method"])


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_method_is_the_mocov3_formula(tau):
    q1, q2, k1, k2 = (randn(6, 4, seed=s) for s in range(4))
    q1.requires_grad_()
    got = mocov3_method(tau)(q1, q2, None, k1, k2)
    ref = ref_mocov3(q1.detach(), q2, k1, k2, tau)
    assert float(got.detach()) == pytest.approx(ref / (4 * tau), rel=1e-12)
    # the gradient is the formula's, divided by 4 tau
    got.backward()
    q = q1.detach().clone().requires_grad_()
    qn, k2n = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(k2, dim=1)
    formula = 2 * tau * torch.nn.functional.cross_entropy(qn @ k2n.T / tau, torch.arange(6))
    formula.backward()
    assert torch.allclose(q1.grad, q.grad / (4 * tau), atol=1e-14)


def test_loop_step_uses_predictions_and_teacher_keys():
    """The first logged loss of a MoCo v3 run equals the formula on the run's own first batch: the
    student's predictor outputs as queries, the EMA teacher's projections (eval mode, no gradient)
    as keys, the views drawn as the loop draws them."""
    g = torch.Generator().manual_seed(3)
    X, y = torch.randint(0, 256, (48, 1, 10, 10), generator=g, dtype=torch.uint8), torch.arange(48) % 4
    tau = 0.3
    cfg = validate_config({
        "model": {"width": 4, "blocks": [1], "proj_hidden": 16, "proj_dim": 8, "predictor": True, "pred_hidden": 16},
        "method": {"name": "simclr", "temperature": tau, "ema_decay": 0.9},
        "augment": {"blur_prob": 0.0, "noise_std": 0.05},
        "train": {"batch_size": 16, "max_steps": 1, "log_every": 1, "progress": False, "seed": 5, "threads": 1},
        "eval": {"enabled": False}})
    r = pretrain(cfg, X, y, resume=False)
    logged = r.history[0]["loss"]

    torch.manual_seed(5)
    net = build_model(cfg, 1, (10, 10))
    teacher = EMA(net, 0.9)
    data = _prepare_data(cfg, X, y, 1, torch.device("cpu"))
    perm = torch.randperm(48, generator=torch.Generator().manual_seed(seed_of(5, 0)))
    x = X[perm[:16]].float() / 255.0
    gen = torch.Generator().manual_seed(seed_of(5, 0, 0))
    v1, v2 = data.augment(x, generator=gen), data.augment(x, generator=gen)
    net.train()
    pred = net.predict(net(torch.cat([v1, v2])))
    keys = teacher(torch.cat([v1, v2]))
    (p1, p2), (k1, k2) = pred.double().chunk(2), keys.double().chunk(2)
    ref = ref_mocov3(p1.detach(), p2.detach(), k1, k2, tau)
    assert logged == pytest.approx(ref / (4 * tau), rel=1e-5)
    assert not keys.requires_grad
    assert math.isfinite(logged)
