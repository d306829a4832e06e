"""Training throughput on CPU: images/s of one full pretraining step (two augmented views,
forward, Kernel-InfoNCE loss, backward, SGD) at global batch 256 and 1024, with

* 1 process x 1 thread, 1 process x 2 threads, and
* 2 processes x 1 thread (torch.distributed gloo, each rank half of the global batch, the loss
  gathering the candidates of both ranks: the same step as one process on the global batch).

Real Fashion-MNIST images; the model of ``bench_pretrain.py`` (``--width``, ``--blocks``,
``--stem-stride``). Prints a table and writes JSON to ``--out``.

    nice -n 5 python benchmarks/bench_throughput.py
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", nargs="+", type=int, default=[256, 1024])
    p.add_argument("--steps", type=int, default=4, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--blocks", nargs="+", type=int, default=[1, 1, 1])
    p.add_argument("--stem-stride", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/throughput_cpu.json")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args) -> None:
    """One measurement (in this process, or as one rank of a torch.distributed job)."""
    import torch

    torch.set_num_threads(args.threads)
    from iconlearn.data.datasets import load_fashion_mnist
    from iconlearn.train import StepTimer, pretrain

    world = int(os.environ.get("WORLD_SIZE", "1"))
    ds = load_fashion_mnist("train")
    n = max(4096, 2 * args.batch)
    X, y = torch.as_tensor(ds.X[:n])[:, None], torch.as_tensor(ds.y[:n])
    cfg = {"model": {"width": args.width, "blocks": list(args.blocks), "stem_stride": args.stem_stride,
                     "proj_hidden": 256, "proj_dim": 64},
           "method": {"name": "kernel_infonce", "kernel": "laplacian"},
           "train": {"batch_size": args.batch // world, "max_steps": args.warmup + args.steps, "device": "cpu",
                     "progress": False, "log_every": 1000},
           "eval": {"enabled": False}}
    timer = StepTimer()
    pretrain(cfg, X, y, callbacks=[timer], resume=False)
    if int(os.environ.get("RANK", "0")) == 0:
        t = float(np.median(timer.times[args.warmup:]))
        Path(args.worker_out).write_text(json.dumps({"step_s": t, "images_per_s": args.batch / t}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(args, batch: int, procs: int, threads: int, tmp: Path) -> dict:
    out = tmp / f"w_{batch}_{procs}_{threads}.json"
    base = [sys.executable, __file__, "--worker", "--batch", str(batch), "--threads", str(threads),
            "--worker-out", str(out), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--width", str(args.width), "--stem-stride", str(args.stem_stride), "--blocks", *map(str, args.blocks)]
    port = _free_port()
    ps = []
    for rank in range(procs):
        env = dict(os.environ)
        if procs > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(procs), LOCAL_WORLD_SIZE=str(procs),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        ps.append(subprocess.Popen(base, env=env))
    if any(p.wait() != 0 for p in ps):
        raise SystemExit(f"worker failed (batch {batch}, {procs} processes)")
    r = json.loads(out.read_text())
    return {"batch_size": batch, "processes": procs, "threads_per_process": threads,
            "step_s": round(r["step_s"], 3), "images_per_s": round(r["images_per_s"], 1)}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            for procs, threads in ((1, 1), (1, 2), (2, 1)):
                r = measure(args, batch, procs, threads, Path(tmp))
                rows.append(r)
                print(json.dumps(r), flush=True)
    for batch in args.batches:
        one = next(r for r in rows if r["batch_size"] == batch and r["processes"] == 1 and r["threads_per_process"] == 1)
        for r in rows:
            if r["batch_size"] == batch:
                r["speedup_vs_1x1"] = round(r["images_per_s"] / one["images_per_s"], 2)
    print("| global batch | processes x threads | s/step | images/s | vs 1 x 1 |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['batch_size']} | {r['processes']} x {r['threads_per_process']} | {r['step_s']} | "
              f"{r['images_per_s']} | {r['speedup_vs_1x1']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "command": "python " + " ".join(sys.argv), "rows": rows,
                               "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
