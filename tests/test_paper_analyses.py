"""The analyses that close the three papers, on tiny sizes, checking
their numbers: Kernel-InfoNCE's Theorem 6.1 and MRF identity, Calder-Lee's Propositions 2.1, 3.1,
A.1 and Lemma A.2, and I-Con's Figures 1 and 3 on real data (digits, present everywhere)."""
import importlib
import math

import numpy as np
import pytest
import torch

kt, var, inv, figs = (importlib.import_module(f"iconlearn.analysis.{m}") for m in
                      ("kernel_theory", "variational", "invariance", "icon_figures"))


pytestmark = pytest.mark.usefixtures("one_thread")


def by_name(res):
    return {c.name: c for c in res.checks}


def test_kernel_theory_checks_hold():
    res = kt.kernel_theory(trials=3, n=4, seed=1)
    c = by_name(res)
    assert all(ch.holds for ch in res.checks), [ch.name for ch in res.checks if not ch.holds]
    assert c["Sec. 4: cross-entropy = InfoNCE"].deviation < 1e-12
    assert c["Thm 6.1: max entropy value"].deviation < 1e-9
    assert res.data["configurations"] == 3**4  # out-degree-one subgraphs of 4 nodes without self-loops
    assert "| Sec. 4: the MRF factorises |" in res.to_markdown()


def test_max_entropy_solution_is_the_softmax():
    psi = np.array([0.3, -1.2, 2.0, 0.5])
    alpha, value = kt.max_entropy_solution(psi, 0.5)
    soft = np.exp(psi / 0.5) / np.exp(psi / 0.5).sum()
    assert np.abs(alpha - soft).max() < 1e-7 and value == pytest.approx(0.5 * math.log(np.exp(psi / 0.5).sum()))


def test_enumeration_counts_and_normalises():
    W = np.ones((3, 3)) - np.eye(3)
    picks, P = kt.enumerate_out_degree_one(W)
    assert picks.shape == (8, 3) and np.allclose(P, 1 / 8) and (picks != np.arange(3)).all()


def test_variational_finds_eq6_index_and_confirms_the_rest():
    res = var.variational(trials=2, n=4, m=2, samples=30, lemma_configs=((2, 0.3),))
    c = by_name(res)
    assert not c["Prop 3.1: eq. 6 as written"].holds and c["Prop 3.1: eq. 6 as written"].deviation > 1e-3
    for name in ("Prop 3.1: eq. 6, first term G_{T',T}(f, y)", "Prop 3.1: eq. 6 with m = 1",
                 "Prop 3.1: eq. 7 (invariant f)", "Prop A.1 (1): constant map stationary",
                 "Prop A.1 (1): ... and a maximum", "Prop A.1 (2): f_k = k f", "Lemma A.2: three-term second variation",
                 "Lemma A.2: strictness"):
        assert c[name].holds, name
    assert c["Prop 3.1: eq. 6, first term G_{T',T}(f, y)"].deviation < 1e-10
    lemma = res.data["lemma_a2"][0]
    assert lemma["valid_count"] > 0 and lemma["valid_min"] > 0
    assert res.data["prop_a1"]["grad_norm"][-1] < 1e-12 < res.data["prop_a1"]["grad_norm"][0]
    from iconlearn.analysis.plotting import plot_variational

    assert plot_variational(res) is not None


def test_eq6_gradient_matches_autograd_on_one_draw():
    g = torch.Generator().manual_seed(4)
    Z = (0.4 * torch.randn(2, 3, 2, generator=g, dtype=torch.float64)).requires_grad_()
    (auto,) = torch.autograd.grad(var.eq4_loss(Z, 0.7), Z)
    assert torch.allclose(var.eq6_gradient(Z.detach(), 0.7, as_written=False), auto, atol=1e-14)
    assert not torch.allclose(var.eq6_gradient(Z.detach(), 0.7, as_written=True), auto, atol=1e-6)


def test_proposition_21_factor_2_indicator_and_missing_exponential():
    res = inv.invariance(n=80, taus=(0.2, 0.5))
    for r in res.statement_rows:
        assert r["holds"] < 1e-13
        assert r["as_printed"] > 0.1 and r["no_factor_2"] > 1e-3 and r["no_indicator"] > 1e-5
    z = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="invariant"):
        inv.proposition_21_statement(z, z + 1, 0.5)


def test_figure_images_fall_back_to_digits(monkeypatch):
    monkeypatch.setenv("ICONLEARN_WITHOUT", "all")
    name, Xtr, ytr, Xte, yte = figs.figure_images(n_train=50, n_test=20)
    assert name == "digits" and Xtr.shape == (50, 1, 8, 8) and Xte.dtype == torch.uint8 and len(yte) == 20
    assert int(Xtr.max()) > 200  # grey levels 0..16 scaled to 0..255
    with pytest.raises(ValueError, match="prefer"):
        figs.figure_images("cifar10")


def test_tsne_features_on_digits():
    res = figs.tsne_features(n_points=150, steps=2, batch_size=64, prefer="digits", tsne_iter=60)
    assert res.dataset == "digits" and res.maps["pixels"].shape == (150, 2) and res.maps["features"].shape == (150, 2)
    for key in ("pixels", "features"):
        s = res.scores[key]
        assert 0.1 < s["knn_input"] <= 1 and 0.5 < s["trustworthiness"] <= 1
    assert res.scores["pixels"]["knn_map"] > 0.5  # digits separate well in t-SNE of pixels
    assert "t-SNE map" in res.to_markdown()


def test_debias_batch_on_digits():
    res = figs.debias_batch(batch_sizes=(64,), seeds=(0,), n_points=300,
                            settings={"none": (0.0, 0.0), "p": (0.6, 0.0)})
    acc = {k: float(np.asarray(v).mean()) for k, v in res.accuracy.items()}
    assert all(0.3 < a <= 1 for a in acc.values())
    # debiasing p keeps the assignments away from saturation (the figure's right panels)
    assert float(np.asarray(res.saturated["p"]).mean()) < float(np.asarray(res.saturated["none"]).mean())
    assert "| 64 |" in res.to_markdown()


def test_reproduce_writes_a_new_analysis(tmp_path):
    from iconlearn.commands.reproduce import reproduce

    for name in ("kernel-theory",):
        out = reproduce(name, str(tmp_path), verbose=False)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert "| check |" in (tmp_path / f"{name}.md").read_text()
        assert out["json"].endswith(".json")
