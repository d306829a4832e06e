"""Figures for the analyses: one ``plot_<analysis>(result, path=None)`` per result type.

Each returns the matplotlib Figure and, with ``path``, writes it (PNG) atomically and closes it. matplotlib is
imported lazily with the non-interactive Agg backend.
"""
from __future__ import annotations

import numpy as np

from .._files import atomic_write
from .._plots import pyplot as _plt

__all__ = ["plot_landscape", "plot_invariance", "plot_gradient_flow", "plot_ntk", "plot_spectral",
           "plot_identities", "plot_kernel_theory", "plot_variational", "plot_tsne_features", "plot_debias_batch",
           "save_figure"]


def save_figure(fig, path) -> None:
    """Write the figure to ``path`` as PNG, atomically (never a half-written PNG)."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")


def _finish(fig, path):
    """Save to ``path`` (and release the figure from pyplot's registry) or return it open."""
    if path is not None:
        save_figure(fig, path)
        _plt().close(fig)
    return fig


def plot_landscape(res, path=None):
    """Figure 3: loss against K, against the minimum squared distance, and the threshold against tau."""
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for t, row, lu in zip(res.taus, res.loss, res.loss_uniform):
        ax[0].plot(res.Ks, row, label=f"tau={t:g}")
        ax[1].plot(res.min_sq_dist, row, label=f"tau={t:g}")
        ax[0].axhline(lu, color="gray", lw=0.5, ls=":")
    for th, row in zip(res.threshold, res.loss):
        if np.isfinite(th):
            ax[1].axvline(th, color="gray", lw=0.5, ls="--")
    ax[0].set(xlabel="number of points K", ylabel="NT-Xent loss (eq. 4)", title="loss vs K (dotted: uniform limit)")
    ax[1].set(xscale="log", xlabel="minimum squared distance 4 sin^2(pi/K)", ylabel="loss",
              title="loss vs min. squared distance (dashed: thresholds)")
    ok = np.isfinite(res.threshold)
    ax[2].plot(res.taus[ok], res.threshold[ok], "o", label="measured threshold")
    tt = np.linspace(0, res.taus.max(), 50)
    ax[2].plot(tt, res.slope * tt + res.intercept, "-", label=f"fit: slope {res.slope:.3f}, R^2={res.r2:.4f}")
    ax[2].set(xlabel="tau", ylabel="threshold min. squared distance", title="threshold vs tau")
    for a in ax:
        a.legend(fontsize=7)
    return _finish(fig, path)


def plot_invariance(res, path=None):
    """Proposition 2.1: the two data sets, their common push-forward, and the losses."""
    plt = _plt()
    fig, ax = plt.subplots(1, 4, figsize=(17, 4))
    for a, key in zip(ax[:2], ("clustered", "uniform")):
        x, z = res.samples[key]["x"], res.samples[key]["z"]
        a.scatter(x[:, 0], x[:, 1], c=np.arctan2(z[:, 1], z[:, 0]), cmap="hsv", s=4)
        a.set(title=f"{key} data (colour = f(x))", xlabel="x1", ylabel="x2 (augmented)")
    for key, m in (("clustered", "o"), ("uniform", "x")):
        z = res.samples[key]["z"]
        r = 1.0 if key == "clustered" else 1.1
        ax[2].scatter(r * z[:, 0], r * z[:, 1], s=4, marker=m, label=f"f#{key}")
    ax[2].set(aspect="equal", title="push-forwards (both uniform on S^1)")
    ax[2].legend(fontsize=7)
    names = sorted({r.map for r in res.rows}, key=[r.map for r in res.rows].index)
    width = 0.8 / max(1, len({r.tau for r in res.rows}))
    for k, tau in enumerate(sorted({r.tau for r in res.rows})):
        gaps = [next(r.gap for r in res.rows if r.map == nm and r.tau == tau) for nm in names]
        ax[3].bar(np.arange(len(names)) + k * width, np.maximum(gaps, 1e-18), width, label=f"tau={tau:g}")
    ax[3].set(yscale="log", ylabel="abs(L clustered - L uniform)", title="loss gap between the data sets")
    ax[3].set_xticks(np.arange(len(names)) + width / 2, [nm.replace(", ", "\n") for nm in names], fontsize=6)
    ax[3].legend(fontsize=7)
    return _finish(fig, path)


def plot_gradient_flow(results, path=None):
    """Figures 5-6: snapshots with negative-gradient arrows for every flow, and the numbers over time.

    ``results``: one GradientFlowResult or a list of them (one row block each).
    """
    plt = _plt()
    results = results if isinstance(results, (list, tuple)) else [results]
    rows = [(res, run) for res in results for run in res.runs]
    ncols = max(len(run.snapshots) for _, run in rows) + 2
    fig = plt.figure(figsize=(2.6 * ncols, 2.5 * len(rows)))
    for r, (res, run) in enumerate(rows):
        for c, it in enumerate(sorted(run.snapshots)):
            z, v = run.snapshots[it]
            proj = "3d" if z.shape[1] == 3 else None
            ax = fig.add_subplot(len(rows), ncols, r * ncols + c + 1, projection=proj)
            if proj:
                ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=res.labels, cmap="viridis", s=5)
                ax.quiver(z[:, 0], z[:, 1], z[:, 2], v[:, 0], v[:, 1], v[:, 2], length=0.3, normalize=True, lw=0.4)
            else:
                ax.scatter(z[:, 0], z[:, 1], c=res.labels, cmap="viridis", s=6)
                ax.quiver(z[:, 0], z[:, 1], v[:, 0], v[:, 1], angles="xy", width=0.004)
                ax.set(aspect="equal", xlim=(-1.4, 1.4), ylim=(-1.4, 1.4))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{run.name[:22]}\n{res.dim}-D {res.init}, it {it}", fontsize=6)
        ax = fig.add_subplot(len(rows), ncols, r * ncols + ncols - 1)
        ax.plot(np.maximum(run.iterations, 0.5), run.ratio)
        ax.set(xscale="symlog", yscale="log", title="between/within", xlabel="iteration")
        ax.title.set_fontsize(7)
        ax = fig.add_subplot(len(rows), ncols, r * ncols + ncols)
        ax.plot(np.maximum(run.iterations, 0.5), np.maximum(run.mmd, 1e-12))
        ax.set(xscale="symlog", yscale="log", title="MMD^2 to uniform", xlabel="iteration")
        ax.title.set_fontsize(7)
    fig.tight_layout()
    return _finish(fig, path)


def plot_ntk(res, path=None):
    """Proposition 4.4 convergence, Proposition 4.1 step error, Remark 4.4 velocities."""
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    w = np.array(res.widths, dtype=float)
    ax[0].loglog(w, res.width_errors, "o-", label=f"||K_M - K_inf|| / ||K_inf|| (slope {res.width_slope:.3f})")
    ax[0].loglog(w, res.width_errors[0] * (w / w[0]) ** -0.5, "--", label="M^-1/2")
    ax[0].loglog(w, res.beta_dev, "s-", label="max |beta - 1/2| (Cor. 4.6)")
    ax[0].set(xlabel="width M", title="Proposition 4.4: infinite-width limit")
    ax[0].legend(fontsize=7)
    lrs = list(res.step_rel_error)
    ax[1].loglog(lrs, [res.step_rel_error[k] for k in lrs], "o-")
    ax[1].set(xlabel="learning rate", ylabel="relative error", title="Proposition 4.1: NTK prediction of a step")
    for v in res.velocities:
        ax[2].plot(v.shares, v.normalized_speeds, "o", label=f"delta={v.delta:g}, err={v.rel_error:.1e}")
    s = np.linspace(0, max(res.velocities[0].shares) * 1.05, 10)
    ax[2].plot(s, s, "k--", lw=0.8, label="speed = share (Thm 4.5)")
    ax[2].set(xlabel="cluster share n_q / n", ylabel="speed / (|xi_q|^2 |beta_q grad L|)",
              title="Remark 4.4: small clusters move slowly")
    ax[2].legend(fontsize=7)
    return _finish(fig, path)


def plot_spectral(res, path=None):
    """Principal angles and block recovery per kernel; the first kernel's embeddings against the eigenvectors."""
    plt = _plt()
    graphs = list(res.baselines)
    fig, ax = plt.subplots(1, 2 + len(res.embeddings), figsize=(6 + 4.5 * (1 + len(res.embeddings)), 4.2))
    for k, g in enumerate(graphs):
        rows = [r for r in res.rows if r.graph == g]
        x = np.arange(len(rows)) + 0.4 * k
        ax[0].bar(x, [r.mean_angle for r in rows], 0.4, label=f"{g[:24]} (random: {res.baselines[g]['random_mean_angle']:.0f})")
        ax[1].bar(x, [r.nmi for r in rows], 0.4, label=f"{g[:24]} (spectral: {res.baselines[g]['spectral_nmi']:.2f})")
    names = [r.kernel for r in res.rows if r.graph == graphs[0]]
    for a, t in zip(ax[:2], ("mean principal angle to eigenvectors 2..k (deg)", "NMI of k-means on Z")):
        a.set_xticks(np.arange(len(names)) + 0.2, [n.replace(": ", "\n").replace(" (", "\n(") for n in names],
                     fontsize=6)
        a.set_title(t, fontsize=8)
        a.legend(fontsize=6)
    for a, (g, (Z, y, U)) in zip(ax[2:], res.embeddings.items()):
        from .spectral import embedding_subspace

        S = embedding_subspace(Z, 2)
        a.scatter(S[:, 0], S[:, 1], c=y, cmap="tab10", s=5)
        a.set_title(f"{g[:30]}: InfoNCE embedding (top-2 PCs)", fontsize=7)
    return _finish(fig, path)


def plot_identities(res, path=None):
    """Largest deviation of every identity (log scale) and the Theorem 6 constants."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(13, 4))
    names = [c.name for c in res.checks]
    ax[0].barh(names, [max(c.deviation, 1e-18) for c in res.checks])
    ax[0].set(xscale="log", xlabel="largest abs deviation", title="identity checks (float64)")
    ax[0].tick_params(labelsize=7)
    ax[1].bar(["c-SNE - (L_PKM/s^2 - H)", "c-SNE - (L_PKM/(2 s^2) - H)\n(paper)"],
              [max(res.exact_constant_spread, 1e-18), res.paper_constant_spread])
    ax[1].set(yscale="log", ylabel="spread over random phi", title="Theorem 6: which 'constant' is constant")
    ax[1].tick_params(labelsize=7)
    return _finish(fig, path)


def _check_bars(ax, checks, title):
    """Largest deviation of every check (log scale); red where the statement as checked fails."""
    names = [c.name for c in checks]
    ax.barh(names, [max(c.deviation, 1e-18) for c in checks], color=["C0" if c.holds else "C3" for c in checks])
    ax.set(xscale="log", xlabel="largest abs deviation (red: does not hold)", title=title)
    ax.tick_params(labelsize=6)
    ax.invert_yaxis()


def plot_kernel_theory(res, path=None):
    """Kernel-InfoNCE Theorem 6.1 and the section-4 identities: the deviations."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    _check_bars(ax, res.checks, "Kernel-InfoNCE: Theorem 6.1 and the MRF identity (float64)")
    return _finish(fig, path)


def plot_variational(res, path=None):
    """Calder-Lee Propositions 3.1 / A.1 and Lemma A.2: deviations; the gradient of f_k = k f."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [1.6, 1]})
    _check_bars(ax[0], res.checks, "Calder-Lee: autograd against the stated formulas")
    a1 = res.data["prop_a1"]
    ax[1].semilogy(a1["k"], np.maximum(a1["grad_norm"], 1e-40), "o-", label="n ||grad L(k f)||")
    ax[1].semilogy(a1["k"], np.maximum(np.array(a1["loss"]) - a1["limit"], 1e-17), "s-",
                   label="L(k f) - log(1 + 1/n) (floor 1e-17: float64)")
    ax[1].set(xscale="log", xlabel="k", title="Proposition A.1 (2): f_k = k f")
    ax[1].legend(fontsize=7)
    return _finish(fig, path)


def plot_tsne_features(res, path=None):
    """I-Con Figure 1 on our data: t-SNE of the pixels beside t-SNE of contrastive features."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 5))
    for a, key in zip(ax, ("pixels", "features")):
        Y = res.maps[key]
        a.scatter(Y[:, 0], Y[:, 1], c=res.labels, cmap="tab10", s=3)
        s = res.scores[key]
        a.set_title(f"t-SNE of {key} ({res.dataset})\nkNN acc {s['knn_map']:.3f}, trustworthiness {s['trustworthiness']:.3f}",
                    fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    return _finish(fig, path)


def plot_debias_batch(res, path=None):
    """I-Con Figure 3 on our data: accuracy and saturation against batch size, with and without debiasing."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for k in res.settings:
        acc, sat = np.asarray(res.accuracy[k]), np.asarray(res.saturated[k])
        err = acc.std(1, ddof=1) if acc.shape[1] > 1 else None
        ax[0].errorbar(res.batch_sizes, acc.mean(1), yerr=err, marker="o", capsize=3, label=f"{k} {res.settings[k]}")
        ax[1].plot(res.batch_sizes, sat.mean(1), "o-", label=k)
    ax[0].set(xscale="log", xlabel="batch size", ylabel="Hungarian accuracy", title=f"debiasing vs batch size ({res.dataset})")
    ax[1].set(xscale="log", xlabel="batch size", ylabel="share with max prob > 0.99", title="saturated assignments")
    for a in ax:
        a.set_xticks(res.batch_sizes, [str(b) for b in res.batch_sizes])
        a.minorticks_off()
        a.legend(fontsize=7)
    return _finish(fig, path)
