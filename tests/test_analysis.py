"""Tests of iconlearn.analysis: every analysis on a tiny size, checking its numbers against
references written from the papers' formulas (float64), identities, and bad input."""
import importlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from iconlearn.analysis.ntxent import generalized_ntxent, invariant_ntxent

# the package exports functions named like their modules (iconlearn.analysis.landscape is the
# function); the modules themselves come from importlib
gf, idn, inv, ls, ntk, sp = (importlib.import_module(f"iconlearn.analysis.{m}") for m in
                             ("gradient_flow", "identities", "invariance", "landscape", "ntk", "spectral"))


pytestmark = pytest.mark.usefixtures("one_thread")


def ntxent_loop(z1, z2, tau):
    """Calder-Lee eq. 4 (Psi = log(1+t), eta = exp(-t/tau)) as a plain float64 loop."""
    z1, z2 = np.asarray(z1, dtype=np.float64), np.asarray(z2, dtype=np.float64)
    n, total = len(z1), 0.0
    for i in range(n):
        num = sum(math.exp(-np.sum((z1[i] - z2[j]) ** 2) / 2 / tau) for j in range(n)) / n
        den = math.exp(-np.sum((z1[i] - z2[i]) ** 2) / 2 / tau)
        total += math.log1p(num / den)
    return total / n


# ---------------------------------------------------------------- the loss used by the analyses

def test_generalized_ntxent_matches_eq4_loop():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    for tau in (0.1, 0.7, 3.0):
        assert float(generalized_ntxent(z1, z2, tau)) == pytest.approx(ntxent_loop(z1, z2, tau), rel=1e-10)
    zn = torch.nn.functional.normalize(z1, dim=1)
    assert float(invariant_ntxent(z1, 0.5, sphere=True)) == pytest.approx(ntxent_loop(zn, zn, 0.5), rel=1e-12)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan")])
def test_nonpositive_tau_is_rejected(tau):
    z = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="tau|temperature"):
        invariant_ntxent(z, tau)
    with pytest.raises(ValueError, match="tau"):
        ls.ngon_loss(4, tau)
    with pytest.raises(ValueError, match="tau"):
        ls.landscape(Ks=range(2, 5), taus=(0.1, tau))


# ---------------------------------------------------------------- 1. landscape (Figure 3, Theorem 3.2)

def test_ngon_loss_formula_and_uniform_limit():
    for K, tau in ((2, 0.3), (5, 0.1), (9, 1.0)):
        x = np.stack([np.cos(2 * np.pi * np.arange(K) / K), np.sin(2 * np.pi * np.arange(K) / K)], 1)
        assert ls.ngon_loss(K, tau) == pytest.approx(ntxent_loop(x, x, tau), rel=1e-12)
    # K = 2 antipodal points: log(1 + (1 + e^{-2/tau}) / 2)
    assert ls.ngon_loss(2, 0.5) == pytest.approx(math.log1p((1 + math.exp(-4)) / 2), rel=1e-13)
    # the uniform limit (Bessel I_0) is reached by large K
    for tau in (0.1, 0.5):
        assert ls.ngon_loss(300, tau) == pytest.approx(ls.uniform_loss(tau), abs=1e-12)
    assert ls.min_sq_distance(4) == pytest.approx(2.0)


@pytest.mark.parametrize("K", [1, 0, 2.5])
def test_K_below_two_is_rejected(K):
    with pytest.raises(ValueError, match="K"):
        ls.ngon_loss(K, 0.5)


def test_symmetric_and_collapsed_configurations_are_stationary():
    for tau in (0.1, 0.5):
        for K in (3, 5, 12):
            theta = 2 * np.pi * np.arange(K) / K + 0.4
            st = ls.stationarity(theta, tau)
            assert st.grad_norm < 1e-6 and st.grad_norm < 1e-12
            assert st.kind == "minimum"
            moved = ls.stationarity(theta + 0.05 * np.sin(np.arange(K) * 1.7), tau, hessian=False)
            assert moved.grad_norm > 1e6 * st.grad_norm  # the control: a non-symmetric configuration is not stationary
        collapsed = ls.stationarity(np.full(6, 0.3), tau, hessian=False)
        assert collapsed.grad_norm < 1e-6
        assert collapsed.loss == pytest.approx(math.log(2), abs=1e-9)


def test_landscape_threshold_grows_linearly_with_tau():
    res = ls.landscape(Ks=range(2, 40), taus=(0.05, 0.1, 0.2, 0.3), stationary_Ks=(4,), stationary_taus=(0.2,))
    assert np.all(np.diff(res.loss, axis=1) <= 1e-12)          # loss decreases with K
    assert np.all(np.diff(res.threshold) > 0)
    assert res.slope > 0 and res.r2 > 0.98
    assert res.max_grad_symmetric < 1e-6 < res.min_grad_perturbed
    assert "slope" in res.to_markdown()


# ---------------------------------------------------------------- 2. Proposition 2.1

def test_invariant_maps_with_same_pushforward_give_same_loss():
    res = inv.invariance(n=200, taus=(0.5,))
    assert res.max_gap_rank < 1e-12
    assert res.min_gap_controls > 1e-3
    row = next(r for r in res.rows if r.map.endswith("empirical CDF"))
    assert row.infonce_clustered == pytest.approx(row.infonce_uniform, abs=1e-12)


# ---------------------------------------------------------------- 3. gradient flows (Figures 5-6)

def test_flow_measures_on_known_configurations():
    labels = torch.tensor([0, 0, 1, 1])
    z = torch.tensor([[1.0, 0], [1.0, 0.2], [-1.0, 0], [-1.0, 0.2]], dtype=torch.float64)
    # means (1, .1), (-1, .1); between = 4 * 1, within = 4 * 0.01
    assert gf.between_within_ratio(z, labels) == pytest.approx(100.0)
    circle = torch.from_numpy(np.stack([np.cos(np.linspace(0, 2 * np.pi, 400, endpoint=False)),
                                        np.sin(np.linspace(0, 2 * np.pi, 400, endpoint=False))], 1))
    assert abs(gf.mmd_to_uniform(circle)) < 1e-12
    assert gf.mmd_to_uniform(torch.tensor([[1.0, 0.0]] * 5, dtype=torch.float64)) == pytest.approx(1 - math.exp(-2) * np.i0(2))
    v = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, -1.0]], dtype=torch.float64)
    assert gf.velocity_coherence(v, labels) == pytest.approx(0.5)


def test_network_keeps_clusters_that_vanilla_descent_spreads_out():
    res = gf.gradient_flows(dim=2, init="network", n_per=10, iters=120, flows=("vanilla", "eq18"), snapshots=(0, 120))
    vanilla, net = res.runs
    assert vanilla.ratio[0] == pytest.approx(net.ratio[0], rel=1e-12)   # the same start embedding
    assert net.ratio[-1] > 2 * vanilla.ratio[-1]
    assert vanilla.mmd[-1] < net.mmd[-1]                         # vanilla: closer to uniform
    assert vanilla.loss[-1] < vanilla.loss[0]
    assert set(net.snapshots) == {0, 120}


def test_theorem_4_2_descent_through_a_network_breaks_invariance():
    res = gf.gradient_flows(dim=2, init="network", n_per=8, iters=40, flows=("vanilla", "eq18-invariant"))
    vanilla, inv_net = res.runs
    net = gf._invariant_net(2, 8, 0)
    X, _ = gf.four_cluster_data(4, 2)
    Xc = X.clone()
    Xc[:, 1:] = 0
    assert torch.equal(net(X), net(Xc))                       # eq. 17: the start is invariant
    assert vanilla.defect[-1] == 0.0 and inv_net.defect[0] == 0.0
    assert inv_net.defect[-1] > 1e-4                           # ... and gradient descent on w breaks it


def test_worst_case_start_network_grows_clusters_vanilla_does_not():
    res = gf.gradient_flows(dim=2, init="worst-case", n_per=10, iters=150, flows=("vanilla", "eq18"))
    vanilla, net = res.runs
    assert net.ratio[-1] > 2 * vanilla.ratio[-1]


def test_flow_rejects_network_with_wrong_output_dimension():
    X, labels = gf.four_cluster_data(3, 2)
    z0 = torch.nn.functional.normalize(torch.randn(len(labels), 2, dtype=torch.float64), dim=1)
    net = nn.Linear(2, 3).double()
    with pytest.raises(ValueError, match="output dimension is 3 but the embedding dimension is 2"):
        gf.run_flow(X, labels, z0, net, 0.2, 5, 0.1)
    with pytest.raises(ValueError, match="tau"):
        gf.run_flow(X, labels, z0, None, 0.0, 5, 0.1)
    with pytest.raises(ValueError, match="init"):
        gf.gradient_flows(init="bad")


# ---------------------------------------------------------------- 4. neural tangent kernels

def test_empirical_ntk_of_a_linear_map_is_the_gram_matrix():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(5, 3, generator=g, dtype=torch.float64)
    lin = nn.Linear(3, 2, bias=False).double()
    K = ntk.empirical_ntk(lin, X, out_dim=2)
    ref = torch.einsum("ij,kl->ijkl", X @ X.T, torch.eye(2, dtype=torch.float64))
    assert torch.allclose(K, ref, atol=1e-14)


@pytest.mark.parametrize("act", ["relu", "tanh", "softplus"])
def test_autograd_kernel_equals_proposition_4_3(act):
    g = torch.Generator().manual_seed(2)
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    net = ntk.CalderLeeNet(3, 2, 16, act, generator=g)
    assert (ntk.empirical_ntk(net, X, 2) - ntk.closed_form_ntk(net, X)).abs().max() < 1e-6
    assert (ntk.empirical_ntk(net, X, 2) - ntk.closed_form_ntk(net, X)).abs().max() < 1e-12


def test_infinite_width_kernel_known_values_and_convergence():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    K = ntk.infinite_width_ntk(x, 2)[:, :, 0, 0]
    assert K[0, 0] == pytest.approx(0.5)       # angle 0: x.x / 2
    assert K[0, 1] == pytest.approx(1.0)
    assert K[0, 2] == pytest.approx(0.0)       # orthogonal
    assert K[0, 3] == pytest.approx(0.0)       # opposite: arccos(-1) = pi
    res = ntk.ntk_analysis(n=6, widths=(16, 256, 4096), seeds=4, deltas=(0.1, 0.025), sizes=(24, 12, 4))
    assert -0.65 < res.width_slope < -0.35
    assert res.width_errors[-1] < 0.05
    assert all(e < 1e-12 for e in res.closed_form_error.values())
    assert res.step_rel_error[1e-3] < 1e-4


def test_small_clusters_move_in_proportion_to_their_share():
    v = ntk.cluster_velocities(sizes=(30, 15, 5), delta=0.01, width=128)
    assert np.allclose(v.normalized_speeds, v.shares, atol=0.01)
    assert v.rel_error < 0.02
    assert v.speeds[2] < v.speeds[0]


def test_ntk_bad_input():
    with pytest.raises(ValueError, match="width"):
        ntk.CalderLeeNet(3, 2, 0)
    X = torch.randn(4, 3, dtype=torch.float64)
    net = ntk.CalderLeeNet(3, 2, 4)
    with pytest.raises(ValueError, match="output dimension is 2 but the embedding dimension is 3"):
        ntk.empirical_ntk(net, X, out_dim=3)
    with pytest.raises(ValueError, match="features"):
        ntk.closed_form_ntk(net, torch.randn(4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="could not be applied"):
        ntk.empirical_ntk(net, torch.randn(4, 5, dtype=torch.float64))


# ---------------------------------------------------------------- 5. spectral clustering view

def test_infonce_embedding_spans_the_laplacian_eigenvectors():
    W, y = sp.sbm_graph((30, 30, 30), p_in=0.5, p_out=0.02, seed=0)
    vals, U = sp.leading_eigenvectors(W, 3)
    assert vals[0] == pytest.approx(1.0)
    assert np.allclose(U[:, 0] / U[0, 0], 1.0)                  # the trivial eigenvector is constant
    Z = sp.train_embedding(W, 3, sp.kernel_zoo(0.5)["Gaussian (gamma=2)"], iters=150)
    angles = sp.principal_angles(sp.embedding_subspace(Z, 2), U[:, 1:])
    random = sp.principal_angles(np.random.default_rng(0).standard_normal((90, 2)), U[:, 1:])
    assert angles.max() < 30 and random.max() > 60
    assert sp.principal_angles(U, U @ np.array([[1.0, 2, 0], [0, 1, 0], [3, 0, 1]])).max() < 1e-5


def test_digits_augmentation_graph_is_a_symmetric_gaussian_graph():
    W, y, s = sp.digits_augmentation_graph(60, noise_std=20.0)
    assert W.shape == (60, 60) and np.allclose(W, W.T) and np.all(np.diag(W) == 0)
    assert s == 20.0 and len(np.unique(y)) > 3


# ---------------------------------------------------------------- 6. the I-Con identities

def test_identities_hold_where_they_should_and_the_paper_factor_is_off():
    res = idn.identities(trials=3, n=12, dim=3, clusters=3)
    assert all(c.holds for c in res.checks), [c for c in res.checks if not c.holds]
    assert res.exact_constant_spread < 1e-10 < 1e-3 < res.paper_constant_spread
    c = res.corollary2_agree
    assert c["plus_min_is_kmeans"] and c["thm5_min_is_kmeans"] and not c["minus_min_is_kmeans"]


# ---------------------------------------------------------------- the command

def test_reproduce_command_writes_figure_report_and_json(tmp_path):
    from iconlearn.cli import main

    assert main(["reproduce", "identities", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "identities.md").read_text()
    assert "Theorem 6" in md and (tmp_path / "identities.png").stat().st_size > 1000
    import json

    data = json.loads((tmp_path / "identities.json").read_text())
    assert data["analysis"] == "identities" and data["result"]["checks"]
    with pytest.raises(SystemExit):
        main(["reproduce", "nonsense", "--out", str(tmp_path)])
    assert main(["reproduce", "identities", "--out", str(tmp_path), "--threads", "0"]) == 2


def test_full_sizes_match_the_functions_signatures():
    import inspect

    from iconlearn import analysis as A
    from iconlearn.commands import reproduce as R

    funcs = {"landscape": A.landscape, "invariance": A.invariance, "gradient-flow": A.gradient_flow_suite,
             "ntk": A.ntk_analysis, "spectral": A.spectral, "identities": A.identities,
             "kernel-theory": A.kernel_theory, "variational": A.variational, "icon-tsne": A.tsne_features,
             "icon-debias": A.debias_batch}
    assert set(funcs) == set(R.NAMES) == set(R.FULL)
    for name, f in funcs.items():
        inspect.signature(f).bind(seed=0, **R.FULL[name])     # raises TypeError on a stale keyword


def test_reproduce_all_writes_an_index(tmp_path, monkeypatch):
    from iconlearn.cli import main
    from iconlearn.commands import reproduce as R

    tiny = idn.identities(trials=2, n=6, dim=2, clusters=2)

    def fake_plot(result, path):          # the real figure is checked above; here only the index matters
        open(path, "wb").write(b"\x89PNG")

    monkeypatch.setattr(R, "_run", lambda name, full, seed: (tiny, fake_plot))
    assert main(["reproduce", "all", "--out", str(tmp_path)]) == 0
    index = (tmp_path / "README.md").read_text()
    assert all(f"| {n} |" in index for n in R.NAMES)
    assert all((tmp_path / f"{n}.png").exists() and (tmp_path / f"{n}.json").exists() for n in R.NAMES)
