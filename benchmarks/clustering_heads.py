"""I-Con (or SCAN) on cached real features with every kept head scored: one JSON line per seed with
the selected head's accuracy / NMI, each head's accuracy and final loss, and the fit time. Used to
see whether the label-free selection (lowest loss) picks the best head.

    python benchmarks/clustering_heads.py --dataset fashion-mnist --seeds 0,1,2 \
        --params '{"walks": 1, "alpha_q": 0.6}' --views 0 --out heads.jsonl

``--views N`` adds N augmented copies' features (image data sets; extracted and cached first).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from iconlearn.data.features import extract_features
from iconlearn.estimators.baselines import SCANClustering
from iconlearn.estimators.clustering import IConClustering
from iconlearn.metrics import clustering_scores

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_clustering import SPECS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist", choices=sorted(SPECS))
    ap.add_argument("--method", default="I-Con", choices=["I-Con", "SCAN"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--params", default="{}", help="JSON: estimator parameters changed from the defaults")
    ap.add_argument("--views", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the JSON lines here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    enc, kw = SPECS[args.dataset]
    got = extract_features(args.dataset, enc, n_views=args.views, verbose=False, **kw)
    X, y, views = (got[0], got[1], got[2]) if args.views else (got[0], got[1], None)
    params = json.loads(args.params)
    cls = IConClustering if args.method == "I-Con" else SCANClustering
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        model = cls(len(np.unique(y)), random_state=seed, **params).fit(X, views=views)
        seconds = time.perf_counter() - t0
        scores = clustering_scores(y, model.labels_)
        rec = {"dataset": args.dataset, "method": args.method, "params": params, "views": args.views, "seed": seed,
               "acc": scores["acc"], "nmi": scores["nmi"], "time": seconds, "best_head": model.best_head_,
               "head_acc": [clustering_scores(y, lab)["acc"] for lab in model.heads_proba(X).argmax(-1)],
               "head_loss": model.head_losses_.tolist(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        line = json.dumps(rec)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
