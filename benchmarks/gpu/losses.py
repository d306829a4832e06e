"""GPU variant of benchmarks/bench_losses.py: the same four losses, on CUDA.

  (a) InfoNCE(0.5) on 128-d embeddings; (b) I-Con clustering loss, 1000 clusters, augmentation
  targets; (c) the debiased kNN-walk clustering loss (SparseRows + Smoothed, no dense p);
  (d) a naive dense implementation of (c). Every loss forms a B x B matrix (B/2 images x 2 views).

Time: median forward+backward over repeats after a warm-up, with torch.cuda.synchronize().
Memory: torch.cuda.max_memory_allocated() during one step, minus the memory allocated before it.

Data: real images, scikit-learn's digits by default (ships with scikit-learn; with B/2 > 1,797
images are drawn with replacement), or Fashion-MNIST from ``--fashion-dir`` (the folder with
train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz). Needs only torch, numpy, scikit-learn
(no faiss: the kNN graph uses iconlearn's torch backend).

    PYTHONPATH=src python benchmarks/gpu/losses.py --out results.json          # on the GPU machine
    PYTHONPATH=src python benchmarks/gpu/losses.py --device cpu --tiny --out /tmp/r.json   # smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/ (for bench_losses)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "src"))  # the repo's src/

import torch  # noqa: E402


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="path of the JSON results")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--fashion-dir", default=None, help="Fashion-MNIST folder (default: scikit-learn digits)")
    ap.add_argument("--budget", type=float, default=40.0, help="wall-time budget in seconds")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--tiny", action="store_true", help="batch 64 and 128, 2 repeats (smoke test)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail("CUDA is not available on this machine (pass --device cpu for a smoke test)")
    try:
        import bench_losses as bl
    except ImportError as exc:
        fail(f"cannot import benchmarks/bench_losses.py or iconlearn ({exc}); run from the repo root with PYTHONPATH=src")
    if args.tiny:
        args.batch, args.repeats = [64, 128], 2
    source = "fashion-mnist" if args.fashion_dir else "digits"
    if args.fashion_dir and not os.path.isdir(args.fashion_dir):
        fail(f"--fashion-dir {args.fashion_dir} is not a folder")
    dev = torch.device(args.device)
    batches, info = bl.prepare(source, args.fashion_dir, args.batch, pool=20000)
    info["prepare_s"] = time.perf_counter() - t_start
    rows, skipped = [], []
    for B in args.batch:
        for kind in bl.KINDS:
            if time.perf_counter() - t_start > args.budget:
                skipped.append(f"B={B} {kind}: wall-time budget of {args.budget:g} s spent")
                continue
            step = bl.make_step(kind, batches[B], dev)
            step()  # warm-up (kernels, cuBLAS handles, allocator)
            if dev.type == "cuda":
                torch.cuda.synchronize()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                step()
                torch.cuda.synchronize()
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                peak = None
            reps = args.repeats if B <= 1024 else max(3, args.repeats // 2)
            med, best, loss = bl.time_step(step, dev, reps)
            row = {"kind": kind, "B": B, "median_s": med, "min_s": best, "loss": loss, "peak_mem_mb": peak,
                   "repeats": reps}
            rows.append(row)
            mem = "n/a" if peak is None else f"{peak:9.1f} MiB"
            print(f"B={B:5d} {kind:24s} {med * 1e3:8.2f} ms (min {best * 1e3:7.2f})  peak +{mem}  loss {loss:.4f}",
                  flush=True)
            del step
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "date": datetime.now(timezone.utc).isoformat(),
        "command": "PYTHONPATH=src python benchmarks/gpu/losses.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": info, "memory_method": "torch.cuda.max_memory_allocated during one step minus memory_allocated before",
        "rows": rows, "ratios": bl.ratios(rows), "skipped": skipped,
        "wall_s": time.perf_counter() - t_start,
    }
    for B, r in result["ratios"].items():
        print(f"B={B}: " + "  ".join(f"{k}={v:.2f}" for k, v in r.items()))
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=2, default=str)
    os.replace(out + ".tmp", out)
    print("wrote", out, f"({result['wall_s']:.1f} s)")


if __name__ == "__main__":
    main()
