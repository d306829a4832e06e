"""The Kernel-InfoNCE comparison (CPU budget), resumable.

Trains the same small ResNet with Kernel-InfoNCE under several kernels (Gaussian = plain InfoNCE,
Laplacian, exponential gamma = 0.5, simple-sum and concatenation-sum mixtures of Laplacian +
Gaussian, each mixture in both forms: ``kernel``, one softmax over the summed kernel as the paper
writes it, and ``loss``, lambda L_Laplace + (1 - lambda) L_Gauss as the authors' code trains it),
same steps, batch, augmentations and seeds, then evaluates the frozen backbone on held-out images:
weighted cosine kNN (k = 20) against the training features and a linear probe (logistic regression
on the training features). ``--eval-every`` also records that evaluation during training (the curve
that shows where the linear probe plateaus).

Data: Fashion-MNIST (default, 60,000 training images), MNIST-5k or the 8x8 digits, optionally a
subset (``--n-train``, ``--n-test``) at a lower resolution (``--size``: antialiased bilinear resize).
The concatenation variants double the projection width by default (``--concat-proj-scale``), as the
authors' code does, so that each kernel's slice keeps the width of a single-kernel run.

Each finished (variant, seed) run is appended as one JSON line to ``--results``; a rerun skips
finished runs of the same setup, and an interrupted run resumes from its checkpoint. The summary
(mean +/- std over the seeds present) is printed and written next to the results as Markdown.

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
from scipy.stats import ttest_ind

from iconlearn.train import Callback

KERNELS = {  # name in the table -> method section
    "gaussian (InfoNCE)": {"name": "kernel_infonce", "kernel": "gaussian"},
    "laplacian": {"name": "kernel_infonce", "kernel": "laplacian"},
    "gamma=0.5": {"name": "kernel_infonce", "kernel": "exponential", "gamma": 0.5},
    "simple sum": {"name": "kernel_infonce", "kernel": "sum"},
    "concat sum": {"name": "kernel_infonce", "kernel": "concat"},
    "simple sum, loss form": {"name": "kernel_infonce", "kernel": "sum", "mixture_form": "loss"},
    "concat sum, loss form": {"name": "kernel_infonce", "kernel": "concat", "mixture_form": "loss"},
}
SHORT = {"gaussian": "gaussian (InfoNCE)", "laplacian": "laplacian", "gamma05": "gamma=0.5", "sum": "simple sum",
         "concat": "concat sum", "sum-loss": "simple sum, loss form", "concat-loss": "concat sum, loss form"}
DEFAULT_KERNELS = ["gaussian", "laplacian", "gamma05", "sum", "concat"]
# the arguments that define a setup: a finished run is skipped only when all of them match
SETUP_KEYS = ("steps", "batch_size", "eval_n_train", "dataset", "size", "n_train", "n_test", "width", "blocks",
              "stem_stride", "temperature", "lr", "proj_dim", "concat_proj_scale", "mixture_lambda")
OLD_DEFAULTS = {"dataset": "fashion-mnist", "size": None, "n_train": None, "n_test": None, "width": 16,
                "blocks": [1, 1, 1], "stem_stride": 2, "temperature": 0.5, "lr": 0.3, "proj_dim": 64,
                "concat_proj_scale": 1, "mixture_lambda": 0.5}  # rows written before these were recorded


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", nargs="+", default=DEFAULT_KERNELS, choices=list(SHORT))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=200, help="training steps per run (the shared budget)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist5k", "digits"])
    p.add_argument("--size", type=int, default=None, help="resize the images to size x size (default: as stored)")
    p.add_argument("--n-train", type=int, default=None, help="random subset of the training images")
    p.add_argument("--n-test", type=int, default=None, help="random subset of the test images")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--blocks", nargs="+", type=int, default=[1, 1, 1])
    p.add_argument("--stem-stride", type=int, default=2)
    p.add_argument("--proj-hidden", type=int, default=256)
    p.add_argument("--proj-dim", type=int, default=64)
    p.add_argument("--concat-proj-scale", type=int, default=1,
                   help="projection width factor for the concatenation variants (the authors' code uses 2)")
    p.add_argument("--mixture-lambda", type=float, default=0.5, help="weight of the Laplacian part of the mixtures")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-n-train", type=int, default=None,
                   help="training images used as the kNN / linear-probe reference (default all)")
    p.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (the training curve)")
    p.add_argument("--fashion-dir", default=None)
    p.add_argument("--results", default="benchmarks/results/pretrain_cpu.jsonl")
    p.add_argument("--runs-dir", default="runs/bench_pretrain")
    p.add_argument("--device", default="cpu")
    p.add_argument("--baselines", action="store_true",
                   help="also evaluate the untrained encoder and raw pixels with the same protocol")
    p.add_argument("--probe-backend", default="sklearn", choices=["sklearn", "torch"],
                   help="linear probe: scikit-learn or the same objective by torch L-BFGS (faster)")
    return p.parse_args(argv)


def setup_of(args) -> dict:
    return {"steps": args.steps, "batch_size": args.batch_size, "eval_n_train": args.eval_n_train,
            "dataset": args.dataset, "size": args.size, "n_train": args.n_train, "n_test": args.n_test,
            "width": args.width, "blocks": list(args.blocks), "stem_stride": args.stem_stride,
            "temperature": args.temperature, "lr": args.lr, "proj_dim": args.proj_dim,
            "concat_proj_scale": args.concat_proj_scale, "mixture_lambda": args.mixture_lambda}


def row_setup(row: dict) -> dict:
    return {k: row.get(k, OLD_DEFAULTS.get(k)) for k in SETUP_KEYS}


def load_data(args):
    """(train images, train labels, test images, test labels) as uint8 tensors N x 1 x H x W, the
    subsets and the resize applied; None when the config's own Fashion-MNIST loading is used."""
    import torch

    from iconlearn.data.augment import resize_images
    from iconlearn.data.datasets import load_dataset, load_fashion_mnist

    if args.dataset == "fashion-mnist" and args.size is None and args.n_test is None:
        return None  # the loop loads Fashion-MNIST itself (data.n_train subsets it)

    def get(split, n, seed):
        ds = load_fashion_mnist(split, root=args.fashion_dir) if args.dataset == "fashion-mnist" \
            else load_dataset(args.dataset, split)
        X, y = torch.as_tensor(np.asarray(ds.X)), torch.as_tensor(np.asarray(ds.y))
        X = X.reshape(len(X), 1, *X.shape[-2:]).float()
        if n is not None and n < len(X):
            idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n]
            X, y = X[idx], y[idx]
        if args.dataset == "digits":  # grey levels 0..16
            X = X * (255.0 / 16.0)
        if args.size is not None:
            X = resize_images(X, args.size)
        return X.clamp(0, 255).round().to(torch.uint8), y

    Xtr, ytr = get("train", args.n_train, 12345)
    Xte, yte = get("test", args.n_test, 54321)
    return Xtr, ytr, Xte, yte


def config_for(args, method: dict, seed: int, out_dir: str | None) -> dict:
    proj = args.proj_dim * (args.concat_proj_scale if method.get("kernel") == "concat" else 1)
    return {
        "data": {"dataset": args.dataset, "root": args.fashion_dir,
                 "n_train": args.n_train if args.dataset == "fashion-mnist" else None},
        "model": {"width": args.width, "blocks": list(args.blocks), "stem_stride": args.stem_stride,
                  "proj_hidden": args.proj_hidden, "proj_dim": proj},
        "method": {**method, "temperature": args.temperature,
                   **({"mixture_lambda": args.mixture_lambda} if method.get("kernel") in ("sum", "concat") else {})},
        "optim": {"name": "sgd", "lr": args.lr, "weight_decay": 1e-4, "warmup_steps": max(1, args.steps // 10)},
        "train": {"batch_size": args.batch_size, "max_steps": args.steps, "seed": seed, "device": args.device,
                  "out_dir": out_dir, "ckpt_every": 25, "log_every": 10, "threads": args.threads, "progress": False},
        "eval": {"enabled": True, "knn_k": 20, "probe": True, "probe_backend": args.probe_backend,
                 "n_train": args.eval_n_train},
    }


class Curve(Callback):
    """Evaluates the frozen backbone every ``every`` steps (the training curve)."""

    def __init__(self, every, data, args, seed):
        self.every, self.data, self.args, self.seed = every, data, args, seed
        self.points: list[dict] = []

    def on_step_end(self, state, logs):
        if not self.every or state.step % self.every or state.step == state.total_steps:
            return
        from iconlearn.evaluation import evaluate_encoder

        Xtr, ytr, Xte, yte = self.data
        m = evaluate_encoder(state.model, Xtr, ytr.numpy(), Xte, yte.numpy(), knn_k=20, seed=self.seed,
                             probe_backend=self.args.probe_backend)
        self.points.append({"step": state.step, "epoch": logs["epoch"], **m})
        print(json.dumps({"curve": self.points[-1]}), flush=True)


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

        def vs(key):
            if not base or name == "gaussian (InfoNCE)":
                return ""
            a, b = [r[key] for r in rs], [r[key] for r in base]
            p = f", Welch p = {ttest_ind(a, b, equal_var=False).pvalue:.2f}" if min(len(a), len(b)) > 1 else ""
            return f" ({np.mean(a) - np.mean(b):+.4f} vs Gaussian{p})"

        lines.append(f"| {name} | {','.join(str(r['seed']) for r in rs)} | {ms('knn_acc')}{vs('knn_acc')} | "
                     f"{ms('linear_acc')}{vs('linear_acc')} | {ms('final_loss')} | "
                     f"{np.mean([r['train_s'] for r in rs]):.0f} |")
    return "\n".join(lines)


def baselines(args, data, results: Path, command: str) -> None:
    """The same evaluation for the untrained encoder (first seed's init) and for raw pixels."""
    import torch

    from iconlearn.evaluation import evaluate_encoder
    from iconlearn.metrics.probe import knn_probe, linear_probe
    from iconlearn.train import build_model, validate_config
    from iconlearn.train.loop import _subset, load_images

    cfg = validate_config(config_for(args, KERNELS["gaussian (InfoNCE)"], args.seeds[0], None))
    if data is None:
        X, y = load_images(cfg, "train")
        Xte, yte = load_images(cfg, "test")
    else:
        X, y, Xte, yte = data
    Xref, yref = _subset(X, y, args.eval_n_train, args.seeds[0] + 1, "eval")
    torch.manual_seed(args.seeds[0])
    net = build_model(cfg, 1, tuple(X.shape[-2:]))
    out = {"random encoder (untrained)": evaluate_encoder(net, Xref, yref.numpy(), Xte, yte.numpy(),
                                                          probe_backend=args.probe_backend)}
    Ftr, Fte = Xref.flatten(1).float().numpy() / 255, Xte.flatten(1).float().numpy() / 255
    out["raw pixels"] = {"knn_acc": knn_probe(Ftr, yref.numpy(), Fte, yte.numpy()),
                         "linear_acc": linear_probe(Ftr, yref.numpy(), Fte, yte.numpy(), backend=args.probe_backend)}
    with open(results.with_name(results.stem + "_baselines.jsonl"), "a") as f:
        for name, m in out.items():
            row = {"baseline": name, **m, **setup_of(args), "probe_backend": args.probe_backend,
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
    setup = setup_of(args)
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            if row_setup(r) == setup:
                done.add((r["kernel"], r["seed"]))
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    data = load_data(args)
    tag = f"{args.dataset}{args.size or ''}_n{args.steps}_b{args.batch_size}"
    for seed in args.seeds:
        for short in args.kernels:
            name = SHORT[short]
            if (name, seed) in done:
                print(f"skip {name} seed {seed} (in {results})")
                continue
            out = Path(args.runs_dir) / f"{short}_s{seed}_{tag}"
            cfg = config_for(args, KERNELS[name], seed, str(out))
            curve = Curve(args.eval_every, data, args, seed) if args.eval_every and data is not None else None
            t0 = time.perf_counter()
            try:
                kw = {} if data is None else {"images": data[0], "labels": data[1], "eval_data": (data[2], data[3])}
                r = pretrain(cfg, callbacks=[curve] if curve else (), **kw)
            except FloatingPointError as exc:  # a diverged run is reported, the others go on
                print(f"{name} seed {seed} diverged: {exc}", flush=True)
                continue
            wall = time.perf_counter() - t0
            row = {"kernel": name, "seed": seed, **setup, "knn_acc": r.metrics["knn_acc"],
                   "linear_acc": r.metrics["linear_acc"],
                   "final_loss": float(np.mean([h["loss"] for h in r.history[-3:]])),
                   "train_s": r.history[-1]["elapsed_s"], "wall_s": round(wall, 1), "device": args.device,
                   "threads": args.threads, "probe_backend": args.probe_backend, "model": cfg["model"],
                   "method": cfg["method"], "curve": curve.points if curve else None,
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                   "command": command}
            with open(results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    if args.baselines:
        baselines(args, data, results, command)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    table = summarise([r for r in rows if row_setup(r) == setup])
    print(table)
    results.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
