"""The Kernel-InfoNCE comparison on Fashion-MNIST (CPU budget), resumable.

Trains the same small ResNet with Kernel-InfoNCE under five kernels (Gaussian = plain InfoNCE,
Laplacian, exponential gamma = 0.5, simple-sum and concatenation-sum mixtures of Gaussian +
Laplacian), same steps, batch, augmentations and seeds, on the 60,000 training images, then
evaluates the frozen backbone on the 10,000 test images: weighted cosine kNN (k = 20) against the
training features and a linear probe (logistic regression on the training features).

Each finished (kernel, seed) run is appended as one JSON line to ``--results``; a rerun skips
finished runs, and an interrupted run resumes from its checkpoint. The summary (mean +/- std over
the seeds present) is printed and written next to the results as Markdown.

    nice -n 5 python benchmarks/bench_pretrain.py --seeds 0 --steps 200      # one seed first
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

KERNELS = {  # name in the table -> method section
    "gaussian (InfoNCE)": {"name": "kernel_infonce", "kernel": "gaussian"},
    "laplacian": {"name": "kernel_infonce", "kernel": "laplacian"},
    "gamma=0.5": {"name": "kernel_infonce", "kernel": "exponential", "gamma": 0.5},
    "simple sum": {"name": "kernel_infonce", "kernel": "sum"},
    "concat sum": {"name": "kernel_infonce", "kernel": "concat"},
}
SHORT = {"gaussian": "gaussian (InfoNCE)", "laplacian": "laplacian", "gamma05": "gamma=0.5", "sum": "simple sum",
         "concat": "concat sum"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", nargs="+", default=list(SHORT), choices=list(SHORT))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=200, help="training steps per run (the shared budget)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--blocks", nargs="+", type=int, default=[1, 1, 1])
    p.add_argument("--stem-stride", type=int, default=2)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-train", type=int, default=None, help="subset of the 60,000 training images")
    p.add_argument("--eval-n-train", type=int, default=None,
                   help="training images used as the kNN / linear-probe reference (default all)")
    p.add_argument("--fashion-dir", default=None)
    p.add_argument("--results", default="benchmarks/results/pretrain_cpu.jsonl")
    p.add_argument("--runs-dir", default="runs/bench_pretrain")
    p.add_argument("--device", default="cpu")
    p.add_argument("--baselines", action="store_true",
                   help="also evaluate the untrained encoder and raw pixels with the same protocol")
    p.add_argument("--probe-backend", default="sklearn", choices=["sklearn", "torch"],
                   help="linear probe: scikit-learn or the same objective by torch L-BFGS (faster)")
    return p.parse_args(argv)


def config_for(args, method: dict, seed: int, out_dir: str | None) -> dict:
    return {
        "data": {"dataset": "fashion-mnist", "root": args.fashion_dir, "n_train": args.n_train},
        "model": {"width": args.width, "blocks": list(args.blocks), "stem_stride": args.stem_stride,
                  "proj_hidden": 256, "proj_dim": 64},
        "method": {**method, "temperature": args.temperature},
        "optim": {"name": "sgd", "lr": args.lr, "weight_decay": 1e-4, "warmup_steps": max(1, args.steps // 10)},
        "train": {"batch_size": args.batch_size, "max_steps": args.steps, "seed": seed, "device": args.device,
                  "out_dir": out_dir, "ckpt_every": 25, "log_every": 10, "threads": args.threads, "progress": False},
        "eval": {"enabled": True, "knn_k": 20, "probe": True, "probe_backend": args.probe_backend,
                 "n_train": args.eval_n_train},
    }


def summarise(rows: list[dict]) -> str:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["kernel"], []).append(r)
    base = by.get("gaussian (InfoNCE)")
    lines = ["| kernel | seeds | kNN acc (k=20, cosine) | linear probe acc | final loss | train s/run |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in KERNELS:
        rs = by.get(name)
        if not rs:
            continue

        def ms(key):
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():.4f} +/- {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"

        extra = ""
        if base and name != "gaussian (InfoNCE)":
            d = np.mean([r["knn_acc"] for r in rs]) - np.mean([r["knn_acc"] for r in base])
            extra = f" ({d:+.4f} vs Gaussian)"
        lines.append(f"| {name} | {','.join(str(r['seed']) for r in rs)} | {ms('knn_acc')}{extra} | "
                     f"{ms('linear_acc')} | {ms('final_loss')} | {np.mean([r['train_s'] for r in rs]):.0f} |")
    return "\n".join(lines)


def baselines(args, results: Path, command: str) -> None:
    """The same evaluation for the untrained encoder (seed 0 init) and for raw pixels."""
    import torch

    from iconlearn.evaluation import evaluate_encoder
    from iconlearn.metrics.probe import knn_probe, linear_probe
    from iconlearn.train import build_model, validate_config
    from iconlearn.train.loop import _subset, load_images

    cfg = validate_config(config_for(args, KERNELS["gaussian (InfoNCE)"], args.seeds[0], None))
    X, y = load_images(cfg, "train")
    Xte, yte = load_images(cfg, "test")
    Xref, yref = _subset(X, y, args.eval_n_train, args.seeds[0] + 1, "eval")
    torch.manual_seed(args.seeds[0])
    net = build_model(cfg, 1, (28, 28))
    out = {"random encoder (untrained)": evaluate_encoder(net, Xref, yref.numpy(), Xte, yte.numpy(),
                                                          probe_backend=args.probe_backend)}
    Ftr, Fte = Xref.flatten(1).float().numpy() / 255, Xte.flatten(1).float().numpy() / 255
    out["raw pixels"] = {"knn_acc": knn_probe(Ftr, yref.numpy(), Fte, yte.numpy()),
                         "linear_acc": linear_probe(Ftr, yref.numpy(), Fte, yte.numpy(), backend=args.probe_backend)}
    with open(results.with_name(results.stem + "_baselines.jsonl"), "a") as f:
        for name, m in out.items():
            row = {"baseline": name, **m, "eval_n_train": args.eval_n_train, "probe_backend": args.probe_backend,
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command}
            f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from iconlearn.train import pretrain

    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            done.add((r["kernel"], r["seed"], r["steps"], r["batch_size"], r.get("eval_n_train")))
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    for seed in args.seeds:
        for short in args.kernels:
            name = SHORT[short]
            if (name, seed, args.steps, args.batch_size, args.eval_n_train) in done:
                print(f"skip {name} seed {seed} (in {results})")
                continue
            out = Path(args.runs_dir) / f"{short}_s{seed}_n{args.steps}_b{args.batch_size}"
            cfg = config_for(args, KERNELS[name], seed, str(out))
            t0 = time.perf_counter()
            try:
                r = pretrain(cfg)
            except FloatingPointError as exc:  # a diverged run is reported, the others go on
                print(f"{name} seed {seed} diverged: {exc}", flush=True)
                continue
            wall = time.perf_counter() - t0
            row = {"kernel": name, "seed": seed, "steps": args.steps, "batch_size": args.batch_size,
                   "knn_acc": r.metrics["knn_acc"], "linear_acc": r.metrics["linear_acc"],
                   "final_loss": float(np.mean([h["loss"] for h in r.history[-3:]])),
                   "train_s": r.history[-1]["elapsed_s"], "wall_s": round(wall, 1), "device": args.device,
                   "threads": args.threads, "probe_backend": args.probe_backend, "eval_n_train": args.eval_n_train,
                   "model": cfg["model"], "temperature": args.temperature, "lr": args.lr,
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                   "command": command}
            with open(results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    if args.baselines:
        baselines(args, results, command)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows = [r for r in rows if r["steps"] == args.steps and r["batch_size"] == args.batch_size
            and r.get("eval_n_train") == args.eval_n_train]
    table = summarise(rows)
    print(table)
    results.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
