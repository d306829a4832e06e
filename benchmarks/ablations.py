"""The I-Con paper's ablations (Tables 3-4, Figure 4) on our data with IConClustering.

    python benchmarks/ablations.py --dataset digits --seeds 0,1,2 --out benchmarks/results/ablations

- Table 3: baseline (kNN p, k = 3, no debiasing, no walks, no EMA, random head initialisation)
  -> + debiasing (alpha 0.6 on p and q) -> + kNN propagation (walks of length 1) -> + EMA
  teacher (decay 0.99); and, not in the paper, + k-means initialisation without the EMA (the
  library's defaults).
- Table 4: kNN p with walks of length 0 (P), 1 (P + P^2), 2, 3 (no debiasing; library's
  k-means initialisation).
- Figure 4: alpha in {0, 0.2, 0.4, 0.6, 0.8, 0.9} on p only, and on p and q (walks 1, k-means
  initialisation).
Writes <out>/<dataset>.md / .json and prints them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iconlearn.data.features import extract_features
from iconlearn.estimators.clustering import IConClustering
from iconlearn.metrics import clustering_scores, mean_std

SPECS = {"20newsgroups": ("minilm", {}), "digits": ("pixels", {}), "fashion-mnist": ("efficientnet-lite0", {"size": 64}),
         "pbmc68k": ("pca", {}), "reuters-r52": ("minilm", {})}
BASE = dict(n_neighbors=3, walks=0, alpha_p=0.0, alpha_q=0.0, ema_decay=None, init="auto")


def configs(parts, alphas=(0.0, 0.2, 0.4, 0.6, 0.8, 0.9)):
    """name -> IConClustering settings of each ablation row."""
    out = {}
    if "table3" in parts:
        out["T3 baseline"] = dict(BASE, init="random")
        out["T3 + debiasing"] = dict(BASE, alpha_p=0.6, alpha_q=0.6, init="random")
        out["T3 + kNN propagation"] = dict(BASE, alpha_p=0.6, alpha_q=0.6, walks=1, init="random")
        out["T3 + EMA"] = dict(BASE, alpha_p=0.6, alpha_q=0.6, walks=1, ema_decay=0.99, init="random")
        out["T3 + k-means init, no EMA (defaults)"] = dict(BASE, alpha_p=0.6, alpha_q=0.6, walks=1)
    if "table4" in parts:
        for s in range(4):
            out[f"T4 walks {s}"] = dict(BASE, walks=s)
    if "figure4" in parts:
        for a in alphas:
            out[f"F4 alpha_p={a}"] = dict(BASE, walks=1, alpha_p=a)
            out[f"F4 alpha_p=alpha_q={a}"] = dict(BASE, walks=1, alpha_p=a, alpha_q=a)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits", choices=sorted(SPECS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--parts", default="table3,table4,figure4")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/ablations")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    enc, kw = SPECS[args.dataset]
    X, y = extract_features(args.dataset, enc, **kw)
    k = len(np.unique(y))
    rows = {}
    lines = [f"### ablations on {args.dataset} ({X.shape[0]} x {X.shape[1]} {enc}), seeds {args.seeds}", "",
             "| configuration | Hungarian acc | NMI | time (s) |", "| --- | --- | --- | --- |"]
    for name, cfg in configs(args.parts.split(",")).items():
        runs = []
        for seed in seeds:
            extra = {} if args.epochs is None else {"epochs": args.epochs}
            t = time.perf_counter()
            labels = IConClustering(k, random_state=seed, device="cpu", **cfg, **extra).fit_predict(X)
            s = clustering_scores(y, labels)
            runs.append({"acc": s["acc"], "nmi": s["nmi"], "time": time.perf_counter() - t})
        ms = mean_std(runs)
        rows[name] = {"config": cfg, "runs": runs, "summary": ms}
        line = f"| {name} | {ms['acc'][0]:.3f} ± {ms['acc'][1]:.3f} | {ms['nmi'][0]:.3f} ± {ms['nmi'][1]:.3f} | {ms['time'][0]:.1f} |"
        lines.append(line)
        print(line, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.dataset}.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.dataset}.json").write_text(json.dumps({"command": " ".join(sys.argv), "seeds": seeds, "rows": rows,
                                                          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
