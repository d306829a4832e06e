"""Kernel-InfoNCE on Fashion-MNIST on one GPU: training throughput, then the paper's comparison
(Gaussian = InfoNCE, Laplacian, gamma = 0.5, simple-sum and concat-sum mixtures) x 3 seeds, all
within a wall-time budget.

    PYTHONPATH=src python benchmarks/gpu/pretrain.py --fashion-dir /path/to/fashion-mnist --out results.json
    PYTHONPATH=src python benchmarks/gpu/pretrain.py --device cpu --tiny --out /tmp/tiny.json   # smoke test

1. Throughput: images/s of one full training step (augmentations on the device, two views, forward,
   loss, backward, optimiser) at batch 256 and 1024, with bf16 autocast (AMP) and in fp32.
2. Calibration: the steps per run are set from the measured step time and a measured evaluation
   time so that 5 kernels x len(seeds) runs fit in what is left of ``--budget-s``; every run gets the
   same steps, batch, augmentations and seeds.
3. Runs, seed-major (complete seeds first): train on the 60,000 training images, evaluate the frozen
   backbone on the 10,000 test images (weighted cosine kNN k=20 against the train features, linear
   probe by L-BFGS logistic regression on the GPU). Results are written to ``--out`` after every run,
   so a timeout still leaves every finished run.

Needs torch (CUDA), numpy, scikit-learn, scipy, tqdm; no faiss, no internet.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

KERNELS = {
    "gaussian (InfoNCE)": {"name": "kernel_infonce", "kernel": "gaussian"},
    "laplacian": {"name": "kernel_infonce", "kernel": "laplacian"},
    "gamma=0.5": {"name": "kernel_infonce", "kernel": "exponential", "gamma": 0.5},
    "simple sum": {"name": "kernel_infonce", "kernel": "sum"},
    "concat sum": {"name": "kernel_infonce", "kernel": "concat"},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist",
                   help="folder with the four Fashion-MNIST IDX .gz files")
    p.add_argument("--out", required=True, help="JSON file for the results")
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=300.0, help="wall-time budget of the whole script")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=512, help="batch of the comparison runs")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--blocks", nargs="+", type=int, default=[1, 1, 1, 1])
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.3, help="base lr for batch 256 (scaled linearly)")
    p.add_argument("--max-epochs", type=float, default=30.0, help="cap on the steps per run")
    p.add_argument("--tiny", action="store_true", help="smoke test: 1,024 train / 512 test images, tiny model")
    return p.parse_args(argv)


def left(args) -> float:
    return args.budget_s - (time.perf_counter() - T_START)


def write(out: Path, payload: dict) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, out)


def base_config(args, device: str, batch: int, steps: int, seed: int, method: dict, amp: bool = True) -> dict:
    return {
        "model": {"width": args.width, "blocks": list(args.blocks), "proj_hidden": 512, "proj_dim": 128},
        "method": {**method, "temperature": args.temperature},
        "optim": {"name": "sgd", "lr": args.lr, "weight_decay": 1e-4, "warmup_steps": max(1, steps // 10)},
        "train": {"batch_size": batch, "max_steps": steps, "seed": seed, "device": device, "amp": amp,
                  "progress": False, "log_every": max(1, steps)},
        "eval": {"enabled": False, "knn_k": 20, "probe": True, "probe_backend": "torch"},
    }


def throughput(args, X, y, device, batch: int, amp: bool, steps: int = 12, warmup: int = 4) -> dict:
    import numpy as np

    from iconlearn.train import StepTimer, pretrain

    timer = StepTimer(device)
    cfg = base_config(args, device, batch, warmup + steps, 0, KERNELS["laplacian"], amp)
    pretrain(cfg, X, y, callbacks=[timer], resume=False)
    t = float(np.median(timer.times[warmup:]))
    return {"batch_size": batch, "amp": amp, "step_s": round(t, 5), "images_per_s": round(batch / t, 1),
            "views_per_s": round(2 * batch / t, 1)}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import numpy as np
    import torch

    from iconlearn.data.datasets import load_fashion_mnist
    from iconlearn.evaluation import evaluate_encoder
    from iconlearn.train import StepTimer, pretrain

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no GPU (use --device cpu --tiny for a smoke test)")
    root = Path(args.fashion_dir)
    missing = [f for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                           "t10k-labels-idx1-ubyte.gz") if not (root / f).exists()]
    if missing:
        sys.exit(f"error: {root} lacks {missing}; pass --fashion-dir with the Fashion-MNIST IDX .gz files")
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tr, te = load_fashion_mnist("train", root), load_fashion_mnist("test", root)
    X, y = torch.as_tensor(tr.X)[:, None], torch.as_tensor(tr.y)
    Xte, yte = torch.as_tensor(te.X)[:, None], torch.as_tensor(te.y)
    if args.tiny:
        args.width, args.blocks, args.batch_size = 4, [1, 1], 64
        X, y, Xte, yte = X[:1024], y[:1024], Xte[:512], yte[:512]
    device = args.device
    payload = {"device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu",
               "torch": torch.__version__, "budget_s": args.budget_s, "args": vars(args),
               "n_train": len(X), "n_test": len(Xte), "throughput": [], "runs": [], "notes": []}
    write(out, payload)

    # 1. throughput ------------------------------------------------------------------------------
    batches = [64, 128] if args.tiny else [256, 1024]
    for amp in ([True, False] if device.startswith("cuda") else [False]):
        for b in batches:
            if left(args) < 0.75 * args.budget_s and not args.tiny:
                payload["notes"].append(f"throughput batch {b} amp={amp} skipped: budget")
                continue
            r = throughput(args, X, y, device, b, amp, steps=3 if args.tiny else 12, warmup=1 if args.tiny else 4)
            payload["throughput"].append(r)
            print("throughput", json.dumps(r), flush=True)
            write(out, payload)

    # 2. calibration -----------------------------------------------------------------------------
    B = args.batch_size
    timer = StepTimer(device)
    cfg = base_config(args, device, B, 8, 0, KERNELS["concat sum"])
    t0 = time.perf_counter()
    cal = pretrain(cfg, X, y, callbacks=[timer], resume=False)
    step_s = float(np.median(timer.times[3:]))
    setup_s = time.perf_counter() - t0 - sum(timer.times)
    t0 = time.perf_counter()
    evaluate_encoder(cal.model, X, y.numpy(), Xte, yte.numpy(), knn_k=20, probe=True, probe_backend="torch")
    eval_s = time.perf_counter() - t0
    n_runs = len(KERNELS) * len(args.seeds)
    per_run = (left(args) - 10.0) / n_runs  # 10 s of slack for writing and exit
    spe = len(X) // B
    steps = int(max(1, min(args.max_epochs * spe, (per_run - eval_s - setup_s) / (1.15 * step_s))))
    payload["calibration"] = {"batch_size": B, "step_s": round(step_s, 5), "eval_s": round(eval_s, 2),
                              "setup_s": round(setup_s, 2), "per_run_s": round(per_run, 2), "steps_per_run": steps,
                              "epochs_per_run": round(steps / spe, 3)}
    print("calibration", json.dumps(payload["calibration"]), flush=True)
    write(out, payload)

    # 3. the comparison ----------------------------------------------------------------------------
    for seed in args.seeds:
        for name, method in KERNELS.items():
            need = eval_s + setup_s + steps * step_s
            if left(args) < need:
                payload["notes"].append(f"{name} seed {seed} skipped: {left(args):.0f} s left, a run needs {need:.0f} s")
                write(out, payload)
                continue
            cfg = base_config(args, device, B, steps, seed, method)
            cfg["eval"]["enabled"] = True
            t0 = time.perf_counter()
            try:
                r = pretrain(cfg, X, y, eval_data=(Xte, yte), resume=False)
            except (FloatingPointError, RuntimeError) as exc:  # a diverged run is a result, not a crash
                payload["runs"].append({"kernel": name, "seed": seed, "steps": steps, "error": str(exc)[:300]})
                print("run failed", name, seed, exc, flush=True)
                write(out, payload)
                continue
            row = {"kernel": name, "seed": seed, "steps": steps, "batch_size": B, **r.metrics,
                   "final_loss": r.history[-1]["loss"], "train_s": r.history[-1]["elapsed_s"],
                   "wall_s": round(time.perf_counter() - t0, 2)}
            payload["runs"].append(row)
            print("run", json.dumps(row), flush=True)
            write(out, payload)

    # summary ---------------------------------------------------------------------------------------
    summary = {}
    for name in KERNELS:
        rs = [r for r in payload["runs"] if r["kernel"] == name and "error" not in r]
        if rs:
            summary[name] = {k: [float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs], ddof=1))
                                 if len(rs) > 1 else 0.0] for k in ("knn_acc", "linear_acc")}
            summary[name]["seeds"] = [r["seed"] for r in rs]
    payload["summary"] = summary
    payload["total_s"] = round(time.perf_counter() - T_START, 1)
    write(out, payload)
    for name, s in summary.items():
        print(f"{name:20s} kNN {s['knn_acc'][0]:.4f} +/- {s['knn_acc'][1]:.4f}   "
              f"linear {s['linear_acc'][0]:.4f} +/- {s['linear_acc'][1]:.4f}   seeds {s['seeds']}")
    print(f"total {payload['total_s']} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
