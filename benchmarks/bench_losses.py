"""Forward+backward time and peak memory of the core losses.

Four losses on the same real batch, every one forming a B x B matrix (B rows = B/2 images x 2 views):

  (a) InfoNCE(0.5) on the 128-d embeddings (z1, z2 of B/2 rows each);
  (b) the I-Con clustering loss with plain augmentation targets: a linear head 128 -> 1000
      clusters, softmax, IConClusteringLoss(groups=image ids), no debiasing;
  (c) the debiased kNN-walk clustering loss: the same head, p = 1/2 augmentation + 1/2 kNN-walk
      neighbours (k=5, walks of length <= 2 on the dataset's kNN graph, restricted to the batch) as
      SparseRows, debiased on both sides (alpha_p = alpha_q = 0.2) through core.Smoothed / smooth_log_q:
      no dense p is allocated;
  (d) a naive dense implementation of (c) written here: dense p (B x B), dense debiasing, dense q,
      dense KL.

Data: Fashion-MNIST train images (real; a 20,000-image pool), embedded by PCA to 128 dimensions;
view 2 is a SimCLR augmentation of view 1's image (iconlearn.data.augment). The kNN graph is built
on the pool's PCA features. Time: median of repeats after one warm-up. Peak memory on CPU: each
configuration runs in a fresh subprocess; after a warm-up step the RSS high-water mark is reset
(/proc/self/clear_refs) and we report VmHWM - VmRSS over one forward+backward (tracemalloc cannot
see torch's allocator), plus the MiB of tensors autograd saves for backward. On CUDA
(benchmarks/gpu/losses.py): torch.cuda.max_memory_allocated after reset.

    python benchmarks/bench_losses.py --out benchmarks/results/bench_losses.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
import torch

from iconlearn.core import SparseRows
from iconlearn.losses import IConClusteringLoss, InfoNCE
from iconlearn.supervisory import knn_matrix, mix, restrict_to_batch, same_group_targets, walk_matrix

KINDS = ("a_infonce", "b_cluster_aug", "c_cluster_knn_debiased", "d_naive_dense")
DIM, CLUSTERS, ALPHA, K_NN, WALK = 128, 1000, 0.2, 5, 2


# --------------------------------------------------------------------------- data


def load_images(source: str, fashion_dir: str | None, pool: int, seed: int) -> np.ndarray:
    """Real images as float32 (N x 1 x H x W) in [0, 1]."""
    rng = np.random.default_rng(seed)
    if source == "fashion-mnist":
        from iconlearn.data.datasets import load_fashion_mnist
        from pathlib import Path

        ds = load_fashion_mnist("train", **({"root": Path(fashion_dir)} if fashion_dir else {}))
        X = ds.X
    else:  # scikit-learn digits (ships with scikit-learn: always available offline)
        from sklearn.datasets import load_digits

        X = np.round(load_digits().images * (255.0 / 16.0))
    idx = rng.choice(len(X), size=min(pool, len(X)), replace=False)
    return (X[idx].astype(np.float32) / 255.0)[:, None]


def prepare(source: str, fashion_dir: str | None, batch_sizes, pool: int = 20000, seed: int = 0, device="cpu"):
    """Embeddings of both views and the kNN-walk graph, then one batch of each size with its targets."""
    from sklearn.decomposition import PCA

    from iconlearn.data.augment import SimCLRAugment
    from iconlearn.neighbors import knn

    imgs = load_images(source, fashion_dir, pool, seed)
    flat = imgs.reshape(len(imgs), -1)
    dim = min(DIM, flat.shape[1])
    pca = PCA(dim, random_state=seed).fit(flat)
    g = torch.Generator().manual_seed(seed)
    aug = SimCLRAugment(crop_scale=(0.5, 1.0), blur_prob=0.0)
    view2 = aug(torch.as_tensor(imgs), generator=g).numpy().reshape(len(imgs), -1)
    e1 = pca.transform(flat).astype(np.float32)
    e2 = pca.transform(view2).astype(np.float32)
    if dim < DIM:  # digits have 64 pixels: pad with a fixed random projection of them to 128-d
        R = np.random.default_rng(seed).standard_normal((flat.shape[1], DIM - dim)).astype(np.float32) / 8
        e1, e2 = np.hstack([e1, flat @ R]), np.hstack([e2, view2 @ R])
    t0 = time.perf_counter()
    _, nb = knn(e1, K_NN, metric="cosine", backend="auto")
    walks = walk_matrix(knn_matrix(nb), WALK)
    t_graph = time.perf_counter() - t0
    batches = {}
    rng = np.random.default_rng(seed + 1)
    for B in batch_sizes:
        n = B // 2
        ids = rng.choice(len(e1), size=n, replace=len(e1) < n)
        rows = np.concatenate([ids, ids])
        t0 = time.perf_counter()
        aug_p = same_group_targets(torch.as_tensor(np.concatenate([np.arange(n), np.arange(n)])))
        knn_p = restrict_to_batch(walks, rows, rows, exclude_positions=np.arange(B))
        target = mix([aug_p, knn_p], [0.5, 0.5])
        t_target = time.perf_counter() - t0
        batches[B] = {
            "z1": torch.as_tensor(e1[ids]), "z2": torch.as_tensor(e2[ids]),
            "groups": torch.arange(n).repeat(2), "values": target.values.float(), "indices": target.indices,
            "target_build_s": t_target, "target_width": int(target.indices.shape[1]),
        }
    return batches, {"graph_build_s": t_graph, "pool": len(e1), "source": source}


# --------------------------------------------------------------------------- the four losses


def naive_dense_debiased_cluster_loss(probs: torch.Tensor, p_dense: torch.Tensor, alpha_p: float, alpha_q: float):
    """(d): the math of (c) written densely, as one would without the core's sparse forms."""
    B = probs.shape[0]
    eye = torch.eye(B, dtype=torch.bool, device=probs.device)
    q = probs @ (probs / probs.sum(0, keepdim=True)).T
    q = q.masked_fill(eye, 0.0)
    q = q / q.sum(1, keepdim=True)
    q = ((1 - alpha_q) * q + alpha_q / (B - 1)).masked_fill(eye, 1.0)
    p = ((1 - alpha_p) * p_dense + alpha_p / (B - 1)).masked_fill(eye, 0.0)
    keep = p_dense.sum(1) > 0
    kl = (torch.special.xlogy(p, p) - p * torch.log(q)).sum(1)
    return kl[keep].mean()


def make_step(kind: str, batch: dict, device: str):
    """A closure running one forward + backward of loss ``kind`` on ``batch``."""
    z1 = batch["z1"].to(device).requires_grad_()
    z2 = batch["z2"].to(device).requires_grad_()
    B = 2 * z1.shape[0]
    if kind == "a_infonce":
        loss_fn = InfoNCE(0.5)

        def step():
            z1.grad = z2.grad = None
            loss = loss_fn(z1, z2)
            loss.backward()
            return loss

        return step
    torch.manual_seed(0)
    head = torch.nn.Linear(DIM, CLUSTERS).to(device)
    groups = batch["groups"].to(device)
    target = SparseRows(batch["values"].to(device), batch["indices"].to(device))
    p_dense = target.to_dense(B) if kind == "d_naive_dense" else None
    plain, debiased = IConClusteringLoss(), IConClusteringLoss(ALPHA, ALPHA)

    def step():
        head.zero_grad(set_to_none=True)
        z1.grad = z2.grad = None
        probs = torch.softmax(head(torch.cat([z1, z2])), 1)
        if kind == "b_cluster_aug":
            loss = plain(probs, groups)
        elif kind == "c_cluster_knn_debiased":
            loss = debiased(probs, target=target)
        else:
            loss = naive_dense_debiased_cluster_loss(probs, p_dense, ALPHA, ALPHA)
        loss.backward()
        return loss

    return step


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_step(step, device, repeats: int) -> tuple[float, float, float]:
    """(median, min, loss value) seconds over ``repeats`` after one warm-up."""
    loss = step()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), float(loss.detach())


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def saved_for_backward_mb(step) -> float:
    """MiB of distinct tensor storages autograd keeps for the backward pass of one step."""
    seen = {}

    def pack(t):
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values()) / 2**20


def run_one(kind: str, batch_file: str, repeats: int, threads: int) -> dict:
    """One configuration in this (fresh) process: time, peak memory of one step, saved tensors.

    Peak memory: after a warm-up step, the RSS high-water mark is reset (``echo 5 >
    /proc/self/clear_refs``) and one more step runs; we report VmHWM - VmRSS before it. The parent
    sets MALLOC_MMAP_THRESHOLD_ so that freed large blocks return to the OS and cannot hide a peak.
    """
    torch.set_num_threads(threads)
    batch = torch.load(batch_file, weights_only=False)
    step = make_step(kind, batch, "cpu")
    step()  # warm-up: thread pools, allocator, lazy init
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    step()
    peak_mb = max(_status_kb("VmHWM") - base, 0) / 1024
    saved = saved_for_backward_mb(step)
    med, best, loss = time_step(step, "cpu", repeats)
    return {"kind": kind, "B": 2 * batch["z1"].shape[0], "median_s": med, "min_s": best, "loss": loss,
            "peak_mem_mb": peak_mb, "saved_mb": saved}


def ratios(rows: list[dict]) -> dict:
    out = {}
    for B in sorted({r["B"] for r in rows}):
        by = {r["kind"]: r for r in rows if r["B"] == B}
        if "c_cluster_knn_debiased" not in by:
            continue
        c = by["c_cluster_knn_debiased"]
        out[str(B)] = {f"c/{k[0]}_{key}": c[key] / by[k][key] for k in ("a_infonce", "b_cluster_aug", "d_naive_dense")
                       if k in by for key in ("median_s", "peak_mem_mb", "saved_mb")
                       if c.get(key) is not None and (by[k].get(key) or 0) > 0}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[512, 4096], help="rows B (B/2 images x 2 views)")
    ap.add_argument("--source", choices=["fashion-mnist", "digits"], default="fashion-mnist")
    ap.add_argument("--fashion-dir", default=None)
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 10 at B <= 1024, else 3)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 by default: on a machine whose cores are busy, spinning OpenMP "
                         "threads make small ops far slower)")
    ap.add_argument("--out", default="benchmarks/results/bench_losses.json")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "BATCH_FILE", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], int(args.one[2]), args.threads)))
        return
    torch.set_num_threads(args.threads)
    batches, info = prepare(args.source, args.fashion_dir, args.batch)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for B, batch in batches.items():
            path = os.path.join(tmp, f"batch{B}.pt")
            torch.save(batch, path)
            reps = args.repeats or (10 if B <= 1024 else 3)
            for kind in KINDS:
                cmd = [sys.executable, __file__, "--threads", str(args.threads), "--one", kind, path, str(reps)]
                env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
                res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                row = json.loads(res.stdout.strip().splitlines()[-1])
                row["target_build_s"] = batch["target_build_s"] if kind.startswith(("c", "d")) else 0.0
                rows.append(row)
                print(f"B={B:5d} {kind:24s} {row['median_s'] * 1e3:9.1f} ms (min {row['min_s'] * 1e3:8.1f})"
                      f"  peak +{row['peak_mem_mb']:8.1f} MiB  saved {row['saved_mb']:8.1f} MiB"
                      f"  loss {row['loss']:.4f}", flush=True)
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__, "threads": args.threads, "date": datetime.now(timezone.utc).isoformat(),
        "command": "python benchmarks/bench_losses.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": info, "memory_method": "fresh process per row; after a warm-up step the RSS high-water mark is reset "
                                       "(/proc/self/clear_refs) and peak = VmHWM - VmRSS over one forward+backward "
                                       "(MALLOC_MMAP_THRESHOLD_=131072); saved = distinct storages autograd keeps for backward",
        "target_width": {str(B): b["target_width"] for B, b in batches.items()},
        "target_build_s": {str(B): b["target_build_s"] for B, b in batches.items()},
        "rows": rows, "ratios": ratios(rows),
    }
    for B, r in result["ratios"].items():
        print(f"B={B}: " + "  ".join(f"{k}={v:.2f}" for k, v in r.items()))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp_out = args.out + ".tmp"
    with open(tmp_out, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp_out, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
