"""gather_distributed on 2 CPU processes (gloo) == one process on the global batch.

Convention (iconlearn.distributed): each rank's loss is the mean over its local anchors, so the
mean of the ranks' losses is the global loss; each rank's gradient on its local embeddings is
W x the global gradient of those embeddings, which DDP's gradient averaging turns into exactly the
single-process parameter gradient (checked with a DDP-wrapped linear layer).
"""
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from iconlearn.distributed import gather, is_distributed, rank_and_world

WORLD, N, D = 2, 6, 5  # N embeddings per rank


def _global_inputs():
    g = torch.Generator().manual_seed(0)
    B = WORLD * N
    W = torch.rand(B, B, generator=g, dtype=torch.float64)
    W = (W + W.T).fill_diagonal_(0)
    return {
        "z1": torch.randn(B, D, generator=g, dtype=torch.float64),
        "z2": torch.randn(B, D, generator=g, dtype=torch.float64),
        "labels": torch.tensor([0, 1, 2, 0, 1, 2, 3, 3, 0, 1, 2, 3]),
        "probs_logits": torch.randn(B, 4, generator=g, dtype=torch.float64),
        "extra_logits": torch.randn(B, 4, generator=g, dtype=torch.float64),  # more columns (probs_ref)
        "groups": torch.tensor([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]),  # the two views live on different ranks
        "X": torch.randn(B, 7, generator=g, dtype=torch.float64),
        "W": W,
    }


def _cases():
    """name -> (loss module factory(gather), function(loss, inputs rows) -> loss value, grad keys)."""
    from iconlearn import losses as L

    def pair(make):
        return make, lambda f, x: f(x["z1"], x["z2"]), ("z1", "z2")

    return {
        "InfoNCE": pair(lambda g: L.InfoNCE(0.3, gather_distributed=g)),
        "KernelInfoNCE": pair(lambda g: L.KernelInfoNCE(mixture="concat", sizes=(2, 3), gather_distributed=g)),
        "KernelInfoNCE-loss": pair(lambda g: L.KernelInfoNCE(mixture="sum", form="loss", gather_distributed=g)),
        "SpectralContrastive": pair(lambda g: L.SpectralContrastiveLoss(2.0, gather_distributed=g)),
        "DebiasedContrastive": pair(lambda g: L.DebiasedContrastiveLoss(0.4, 0.2, gather_distributed=g)),
        "InfoNCE-js": pair(lambda g: L.InfoNCE(0.3, gather_distributed=g, divergence="js")),
        "GeneralizedNTXent": pair(lambda g: L.GeneralizedNTXent(temperature=0.4, gather_distributed=g)),
        "GeneralizedNTXent-eq4": pair(lambda g: L.GeneralizedNTXent(negatives="cross_view", gather_distributed=g)),
        "CLIPLoss": pair(lambda g: L.CLIPLoss(0.2, gather_distributed=g)),
        "SupCon": (lambda g: L.SupCon(0.3, gather_distributed=g), lambda f, x: f(x["z1"], x["labels"]), ("z1",)),
        "IConClustering": (lambda g: L.IConClusteringLoss(0.2, 0.3, gather_distributed=g),
                           lambda f, x: f(torch.softmax(x["probs_logits"], 1), x["groups"]), ("probs_logits",)),
        "IConClustering-ref": (lambda g: L.IConClusteringLoss(0.2, 0.3, gather_distributed=g),
                               lambda f, x: f(torch.softmax(x["probs_logits"], 1), x["groups"], probs_ref=torch.softmax(
                                   torch.cat([x["probs_logits"], x["extra_logits"]]), 1)),
                               ("probs_logits", "extra_logits")),
        "KMeansICon": (lambda g: L.KMeansICon(1.3, gather_distributed=g),
                       lambda f, x: f(torch.softmax(x["probs_logits"], 1), x["X"]), ("probs_logits",)),
        "NormalizedCuts": (lambda g: L.NormalizedCutsICon(gather_distributed=g),
                           lambda f, x: f(torch.softmax(x["probs_logits"], 1), x["W"]), ("probs_logits",)),
        "SNE": (lambda g: L.SNELoss(3.0, gather_distributed=g), lambda f, x: f(x["z1"], x["X"]), ("z1",)),
    }


def _run(inputs, rows, gather_flag):
    out = {}
    for name, (make, call, keys) in _cases().items():
        x = {k: (v[rows] if k != "W" else v[rows]).clone() for k, v in inputs.items()}
        for k in keys:
            x[k].requires_grad_()
        loss = call(make(gather_flag), x)
        loss.backward()
        out[name] = (loss.detach(), {k: x[k].grad.clone() for k in keys})
    return out


def _ddp_grads(inputs, rows, gather_flag):
    from iconlearn.losses import InfoNCE

    torch.manual_seed(1)
    model = torch.nn.Linear(D, 3).double()
    if gather_flag:
        model = torch.nn.parallel.DistributedDataParallel(model)
    z = model(torch.cat([inputs["z1"][rows], inputs["z2"][rows]]))
    n = len(range(*rows.indices(WORLD * N))) if isinstance(rows, slice) else len(rows)
    InfoNCE(0.5, gather_distributed=gather_flag)(z[:n], z[n:]).backward()
    return [p.grad.clone() for p in model.parameters()]


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        assert is_distributed() and rank_and_world() == (rank, WORLD)
        inputs = _global_inputs()
        rows = slice(rank * N, (rank + 1) * N)
        result = _run(inputs, rows, True)
        result["ddp"] = _ddp_grads(inputs, rows, True)
        g, offset = gather(torch.full((2, 1), float(rank)))
        result["gather"] = (g, offset)
        try:
            gather(torch.zeros(rank + 1, 1))
            result["uneven"] = "no error"
        except ValueError as exc:
            result["uneven"] = str(exc)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.barrier()  # without it a gloo worker sometimes aborts in destroy_process_group
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results():
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_worker, args=(init_file, tmp), nprocs=WORLD, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def single():
    return _run(_global_inputs(), slice(None), False)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_gathered_loss_and_grads_equal_single_process(rank_results, single, name):
    loss, grads = single[name]
    rank_losses = [r[name][0] for r in rank_results]
    assert torch.allclose(torch.stack(rank_losses).mean(), loss, rtol=1e-10, atol=1e-12), name
    for k, g in grads.items():
        for rank, r in enumerate(rank_results):
            local = r[name][1][k]
            assert torch.allclose(local, WORLD * g[rank * N:(rank + 1) * N], rtol=1e-9, atol=1e-12), (name, k, rank)


def test_ddp_parameter_gradients_equal_single_process(rank_results):
    ref = _ddp_grads(_global_inputs(), slice(None), False)
    for r in rank_results:
        for got, want in zip(r["ddp"], ref):
            assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_gather_order_offset_and_uneven_batches(rank_results):
    for rank, r in enumerate(rank_results):
        g, offset = r["gather"]
        assert offset == 2 * rank and g.view(-1).tolist() == [0.0, 0.0, 1.0, 1.0]
        assert "same local batch size" in r["uneven"]


def test_gather_without_process_group_is_identity():
    x = torch.randn(3, 2)
    g, offset = gather(x)
    assert g is x and offset == 0 and not is_distributed() and rank_and_world() == (0, 1)
