"""Bad input is rejected with a ValueError that says what was wrong; random shapes and values
(hypothesis) never crash otherwise and never give NaN."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from iconlearn import _validation as V
from iconlearn.core import SparseRows
from iconlearn.losses import (
    CLIPLoss,
    CrossEntropyICon,
    GeneralizedNTXent,
    IConClusteringLoss,
    InfoNCE,
    KernelInfoNCE,
    KMeansICon,
    MIClustering,
    NormalizedCutsICon,
    SNELoss,
    SupCon,
    TSNELoss,
)
from iconlearn.supervisory import calibrate

PAIR_LOSSES = [InfoNCE(), KernelInfoNCE(), KernelInfoNCE(mixture="sum"), GeneralizedNTXent(), CLIPLoss()]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("loss", PAIR_LOSSES, ids=lambda l: type(l).__name__)
def test_pair_losses_reject_bad_input(loss):
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same (shape|length)"):
        loss(z, torch.randn(5, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(z, z.clone().index_fill_(0, torch.tensor([1]), float("nan")))
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(z.clone().index_fill_(0, torch.tensor([0]), float("inf")), z)
    with pytest.raises(ValueError, match="2 dimensions"):
        loss(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="floating-point"):
        loss(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="torch.Tensor"):
        loss(np.zeros((4, 3)), z)
    with pytest.raises(ValueError, match="empty"):
        loss(torch.zeros(0, 3), torch.zeros(0, 3))


@pytest.mark.parametrize("make", [InfoNCE, SupCon, CLIPLoss, CrossEntropyICon,
                                  lambda temperature: KernelInfoNCE(temperature=temperature),
                                  lambda temperature: GeneralizedNTXent(temperature=temperature)])
@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), "hot", None])
def test_temperature_must_be_positive(make, bad):
    with pytest.raises(ValueError, match="temperature"):
        make(temperature=bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "x"])
def test_alpha_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="alpha_p"):
        IConClusteringLoss(alpha_p=bad)
    with pytest.raises(ValueError, match="alpha_q"):
        IConClusteringLoss(alpha_q=bad)


def test_option_names_are_checked():
    with pytest.raises(ValueError, match="mixture"):
        KernelInfoNCE(mixture="product")
    with pytest.raises(ValueError, match="gamma"):
        KernelInfoNCE(gamma=0)
    with pytest.raises(ValueError, match="one temperature per gamma"):
        KernelInfoNCE(mixture="sum", gammas=(1.0, 2.0), temperatures=(0.5,))
    with pytest.raises(ValueError, match="weights"):
        KernelInfoNCE(mixture="sum", weights=(1.0, -1.0))
    with pytest.raises(ValueError, match="slice sizes"):
        KernelInfoNCE(mixture="concat", sizes=(2, 2))(torch.randn(3, 5), torch.randn(3, 5))
    with pytest.raises(ValueError, match="negatives"):
        GeneralizedNTXent(negatives="all")
    with pytest.raises(ValueError, match="expectation"):
        GeneralizedNTXent(expectation="median")
    with pytest.raises(ValueError, match="psi"):
        GeneralizedNTXent(psi="log")
    with pytest.raises(ValueError, match="eta"):
        GeneralizedNTXent(eta="gauss")
    with pytest.raises(ValueError, match="normalization"):
        SNELoss(normalization="both")
    with pytest.raises(ValueError, match="joint"):
        TSNELoss(gather_distributed=True)
    with pytest.raises(ValueError, match="direction"):
        NormalizedCutsICon("sideways")
    with pytest.raises(ValueError, match="dof"):
        TSNELoss(dof=0)
    with pytest.raises(ValueError, match="sigma"):
        KMeansICon(sigma=-1)


def test_labels_checked():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="labels has length 3 but there are 4"):
        SupCon()(z, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="integer class ids"):
        SupCon()(z, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        SupCon()(z, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        CrossEntropyICon()(torch.randn(2, 3), None, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="prototypes have dimension"):
        CrossEntropyICon()(torch.randn(2, 3), torch.randn(4, 2), torch.tensor([0, 1]))


def test_clustering_inputs_checked():
    probs = torch.softmax(torch.randn(6, 3), 1)
    with pytest.raises(ValueError, match="groups has length 5"):
        IConClusteringLoss()(probs, torch.arange(5))
    with pytest.raises(ValueError, match="exactly one of groups"):
        IConClusteringLoss()(probs)
    with pytest.raises(ValueError, match="at least 2 clusters"):
        MIClustering()(torch.ones(6, 1), torch.arange(6))
    with pytest.raises(ValueError, match="softmax"):
        MIClustering()(torch.randn(6, 3) - 5, torch.arange(6))
    with pytest.raises(ValueError, match=r"target must have shape \(6, 6\)"):
        IConClusteringLoss()(probs, target=torch.ones(6, 5) / 5)
    with pytest.raises(ValueError, match="column indices outside"):
        IConClusteringLoss()(probs, target=SparseRows(torch.ones(6, 1), torch.full((6, 1), 9)))
    with pytest.raises(ValueError, match="probs and X must have the same length"):
        KMeansICon()(probs, torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"weights must have shape \(6, 6\)"):
        NormalizedCutsICon()(probs, torch.rand(6, 4))
    with pytest.raises(ValueError, match="non-negative"):
        NormalizedCutsICon()(probs, -torch.rand(6, 6))
    with pytest.raises(ValueError, match="probs_ref"):
        IConClusteringLoss()(probs, torch.arange(6), probs_ref=torch.softmax(torch.randn(5, 3), 1))


def test_perplexity_and_sne_inputs_checked():
    Y, X = torch.randn(6, 2), torch.randn(6, 4)
    with pytest.raises(ValueError, match=r"perplexity \(30\) must be smaller than the number of other points \(5\)"):
        SNELoss(30.0)(Y, X)
    with pytest.raises(ValueError, match="perplexity"):
        SNELoss(perplexity=0)
    with pytest.raises(ValueError, match="exactly one of X"):
        SNELoss(2.0)(Y)
    with pytest.raises(ValueError, match="X and embeddings must have the same length"):
        SNELoss(2.0)(Y, X[:5])
    with pytest.raises(ValueError, match=r"p must have shape \(6, 6\)"):
        TSNELoss(2.0)(Y, p=torch.ones(6, 5))
    with pytest.raises(ValueError, match="perplexity must be in"):
        calibrate(torch.rand(5, 4), 4.0)


def test_validation_helpers():
    with pytest.raises(ValueError, match="must be an integer"):
        V.check_int(2.5, "k")
    with pytest.raises(ValueError, match="k must be >= 1"):
        V.check_int(0, "k", low=1)
    with pytest.raises(ValueError, match="2-D array"):
        V.check_array(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        V.check_array(np.array([[1.0, np.nan]]))
    assert V.check_array([[1, 2], [3, 4]]).dtype == np.float32


# --------------------------------------------------------------------------- property tests

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def pair_batch(draw):
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 5))
    vals = draw(st.lists(finite, min_size=2 * n * d, max_size=2 * n * d))
    z = torch.tensor(vals, dtype=torch.float32).view(2, n, d)
    tau = draw(st.sampled_from([0.01, 0.1, 0.5, 1.0, 10.0]))
    return z[0], z[1], tau


@SETTINGS
@given(pair_batch(), st.sampled_from(["InfoNCE", "Kernel", "KernelSum", "KernelConcat", "GNTX", "GNTX4", "CLIP"]))
def test_pair_losses_never_nan(batch, which):
    z1, z2, tau = batch
    loss_fn = {
        "InfoNCE": lambda: InfoNCE(tau),
        "Kernel": lambda: KernelInfoNCE(gamma=1.0, temperature=tau),
        "KernelSum": lambda: KernelInfoNCE(mixture="sum", temperature=tau),
        "KernelConcat": lambda: KernelInfoNCE(mixture="concat", temperature=tau),
        "GNTX": lambda: GeneralizedNTXent(temperature=tau),
        "GNTX4": lambda: GeneralizedNTXent(temperature=tau, negatives="cross_view"),
        "CLIP": lambda: CLIPLoss(tau),
    }[which]()
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    try:
        loss = loss_fn(a, b)
    except ValueError:
        assert which == "KernelConcat" and z1.shape[1] < 2
        return
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


@SETTINGS
@given(st.integers(1, 8), st.integers(2, 5), st.integers(0, 2**31 - 1), st.floats(0, 1), st.floats(0, 1),
       st.integers(1, 4))
@example(n=1, c=2, seed=198, alpha_p=0.0, alpha_q=0.0, n_groups=1)  # a cluster of mass 1e-24 (s^2 underflowed)
@example(n=1, c=2, seed=0, alpha_p=0.5, alpha_q=0.5, n_groups=1)  # one column: debiasing over 0 candidates
def test_clustering_losses_never_nan(n, c, seed, alpha_p, alpha_q, n_groups):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g) * 20).requires_grad_()
    groups = torch.randint(0, n_groups, (n,), generator=g)
    loss = IConClusteringLoss(alpha_p, alpha_q)(torch.softmax(logits, 1), groups)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    X = torch.randn(n, 3, generator=g)
    W = torch.rand(n, n, generator=g)
    for f in (lambda p: KMeansICon()(p, X), lambda p: NormalizedCutsICon()(p, W + W.T),
              lambda p: NormalizedCutsICon("forward")(p, W + W.T)):
        l2 = logits.detach().clone().requires_grad_()
        loss = f(torch.softmax(l2, 1))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(l2.grad).all()


@SETTINGS
@given(st.integers(1, 10), st.integers(1, 4), st.integers(0, 2**31 - 1), st.sampled_from([0.05, 0.5, 5.0]))
def test_supcon_never_nan(n, d, seed, tau):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, d, generator=g) * 100).requires_grad_()
    loss = SupCon(tau)(z, torch.randint(0, 3, (n,), generator=g))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(3, 9), st.integers(0, 2**31 - 1), st.floats(0.5, 1.9), st.sampled_from(["conditional", "joint"]))
def test_sne_never_nan(n, seed, perp_frac, norm):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g) * 10
    Y = (torch.randn(n, 2, generator=g) * 30).requires_grad_()
    perp = min(perp_frac, n - 1.5)
    loss = TSNELoss(perp, normalization=norm)(Y, X)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(Y.grad).all() and float(loss.detach()) >= -1e-6
