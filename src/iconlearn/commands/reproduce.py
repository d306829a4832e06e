"""``iconlearn reproduce NAME --out DIR [--full]``: run one analysis of iconlearn.analysis (or ``all``)
and write NAME.png, NAME.md (the numbers) and NAME.json into DIR."""
from __future__ import annotations

import contextlib
import json
import math
import os
import time

import numpy as np

from .._files import atomic_write
from .._runtime import Interrupted
from ._options import add_output, output_dir

NAMES = ["landscape", "invariance", "gradient-flow", "ntk", "spectral", "identities", "kernel-theory", "variational",
         "icon-tsne", "icon-debias"]

# keyword arguments of the --full runs (sized for a GPU machine or a long CPU run)
FULL = {
    "landscape": dict(Ks=range(2, 301), taus=tuple(np.round(np.linspace(0.02, 1.0, 25), 3)),
                      stationary_Ks=(3, 4, 8, 16, 32, 64)),
    "invariance": dict(n=4000, taus=(0.05, 0.1, 0.2, 0.5, 1.0)),
    "gradient-flow": dict(full=True),
    "ntk": dict(n=32, widths=(4, 16, 64, 256, 1024, 4096, 16384, 65536), seeds=32, deltas=(0.4, 0.2, 0.1, 0.05, 0.025, 0.0125)),
    "spectral": dict(n_digits=1797, sbm_sizes=(250, 250, 250, 250), iters=1000),
    "identities": dict(trials=200, n=100),
    "kernel-theory": dict(trials=200, n=6),
    "variational": dict(trials=200, n=12, m=4, samples=2000),
    "icon-tsne": dict(n_points=5000, steps=600),
    "icon-debias": dict(batch_sizes=(32, 64, 128, 256, 512), seeds=(0, 1, 2)),
}


def _run(name: str, full: bool, seed: int):
    from .. import analysis as A
    from ..analysis import plotting as P

    kw = dict(FULL[name]) if full else {}
    if name == "landscape":
        return A.landscape(seed=seed, **kw), P.plot_landscape
    if name == "invariance":
        return A.invariance(seed=seed, **kw), P.plot_invariance
    if name == "gradient-flow":
        return A.gradient_flow_suite(seed=seed, **kw), P.plot_gradient_flow
    if name == "ntk":
        return A.ntk_analysis(seed=seed, **kw), P.plot_ntk
    if name == "spectral":
        return A.spectral(seed=seed, **kw), P.plot_spectral
    if name == "identities":
        return A.identities(seed=seed, **kw), P.plot_identities
    if name == "kernel-theory":
        return A.kernel_theory(seed=seed, **kw), P.plot_kernel_theory
    if name == "variational":
        return A.variational(seed=seed, **kw), P.plot_variational
    if name == "icon-tsne":
        return A.tsne_features(seed=seed, **kw), P.plot_tsne_features
    if name == "icon-debias":
        return A.debias_batch(seed=seed, **kw), P.plot_debias_batch
    raise ValueError(f"unknown analysis {name!r}; choose one of {', '.join(NAMES)} or 'all'")


def _markdown(result) -> str:
    if isinstance(result, list):
        head = "# Gradient flows with and without a network (Calder-Lee Figures 5-6, Theorems 4.2, 4.5)\n\n"
        return head + "\n".join(r.to_markdown(header=False) for r in result)
    return result.to_markdown()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


def _write_text(path: str, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def reproduce(name: str, out: str, full: bool = False, seed: int = 0, verbose: bool = True) -> dict:
    """Run analysis ``name`` and write ``out/<name>.png``, ``.md`` and ``.json``; returns the paths and time."""
    if name not in NAMES:
        raise ValueError(f"unknown analysis {name!r}; choose one of {', '.join(NAMES)} or 'all'")
    os.makedirs(out, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    result, plot = _run(name, full, seed)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    base = os.path.join(out, name)
    plot(result, base + ".png")
    md = _markdown(result) + (f"\n_Computed in {seconds:.1f} s wall, {cpu:.1f} s CPU ({'full' if full else 'default'} "
                              f"size, seed {seed})._\n")
    _write_text(base + ".md", md)
    data = [r.to_dict() for r in result] if isinstance(result, list) else result.to_dict()
    _write_text(base + ".json", json.dumps(_jsonable({"analysis": name, "full": full, "seed": seed,
                                                      "seconds": seconds, "cpu_seconds": cpu, "result": data}), indent=1))
    if verbose:
        print(f"{name}: {seconds:.1f} s wall, {cpu:.1f} s CPU -> {base}.png, {base}.md, {base}.json")
    return {"name": name, "seconds": seconds, "cpu_seconds": cpu, "png": base + ".png", "md": base + ".md",
            "json": base + ".json"}


def run(args) -> int:
    import torch

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        threadpool_limits = None
    names = NAMES if args.name == "all" else [args.name]
    out = output_dir(args, args.out, [f"{n}.{ext}" for n in names for ext in ("png", "md", "json")]
                     + (["README.md"] if len(names) > 1 else []))
    limits = threadpool_limits(args.threads) if threadpool_limits else contextlib.nullcontext()
    done = []
    with limits:
        try:
            for n in names:
                done.append(reproduce(n, str(out), args.full, args.seed))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; {out}/ holds the analyses that finished: "
                              f"{', '.join(d['name'] for d in done) or 'none'}") from None
    if len(done) > 1:
        lines = ["# iconlearn reproduce all", "", "| analysis | wall s | CPU s | report | figure |",
                 "| --- | --- | --- | --- | --- |"]
        lines += [f"| {d['name']} | {d['seconds']:.1f} | {d['cpu_seconds']:.1f} | [{d['name']}.md]({d['name']}.md) | "
                  f"[{d['name']}.png]({d['name']}.png) |" for d in done]
        _write_text(os.path.join(out, "README.md"), "\n".join(lines) + "\n")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="rerun an analysis of the Calder-Lee / Kernel-InfoNCE papers, or the I-Con identities and figures",
        description="Run one analysis (figure + Markdown report + JSON of the numbers) or all of them.")
    p.add_argument("name", choices=NAMES + ["all"], help="which analysis")
    add_output(p, "output folder (created if missing)", required=True)
    p.add_argument("--full", action="store_true", help="the large sizes (for a GPU or a long CPU run)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch and BLAS (default 1: these small problems run fastest single-threaded)")
    p.set_defaults(func=run)
