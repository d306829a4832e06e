"""One training loop for every contrastive method: devices, DDP, mixed precision, checkpoints,
exact resume, progress bar, callbacks and a CSV log.

Determinism (what makes a resumed run equal to an uninterrupted one): the data order of epoch e
is a permutation drawn from (seed, e); the augmentations of step s on rank r from (seed, s, r);
the learning rate is a function of the step; everything else that changes (weights, optimiser,
teacher, queue, global RNG) is in the checkpoint.

Distributed: launch with ``torchrun --nproc_per_node=N``; the loop joins the process group
(nccl on CUDA, gloo on CPU), each rank takes its slice of the global batch, the losses gather
the candidates of every rank (``gather_distributed=True``) and DDP averages the gradients, so one
step equals a single process on the global batch (up to batch-norm statistics, which are per
rank unless ``model.sync_bn``).
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .. import _validation as V
from .._files import atomic_write, check_writable_dir, save_npy
from .._runtime import Interrupted, resolve_device, stop_on_sigint, torch_threads
from ..data.augment import SimCLRAugment
from ..nn.ema import EMA
from ..nn.encoders import ContrastiveModel, ProjectionHead, SmallResNet, feature_dim
from ..nn.memory import Queue
from .checkpoint import CheckpointError, check_compatible, load_checkpoint, model_signature, save_checkpoint
from .config import ConfigError, validate_config
from .methods import Method
from .optim import build_optimizer, lr_at

__all__ = ["Callback", "TrainState", "PretrainResult", "pretrain", "build_model", "load_images", "seed_of"]


class Callback:
    """Hooks of the loop; set ``state.stop = True`` to end training after the current step."""

    def on_train_start(self, state: "TrainState") -> None: ...

    def on_step_end(self, state: "TrainState", logs: dict) -> None: ...

    def on_checkpoint(self, state: "TrainState", path: Path) -> None: ...

    def on_train_end(self, state: "TrainState") -> None: ...


class StepTimer(Callback):
    """Wall time of every training step (CUDA is synchronised first, so a step is really done)."""

    def __init__(self, device="cpu"):
        self.times: list[float] = []
        self._t = 0.0
        self._sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def on_train_start(self, state: "TrainState") -> None:
        self._sync()
        self._t = time.perf_counter()

    def on_step_end(self, state: "TrainState", logs: dict) -> None:
        self._sync()
        now = time.perf_counter()
        self.times.append(now - self._t)
        self._t = now


@dataclass
class TrainState:
    step: int  # steps done
    total_steps: int
    steps_per_epoch: int
    rank: int
    world_size: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: dict
    stop: bool = False
    history: list = field(default_factory=list)


@dataclass
class PretrainResult:
    model: nn.Module  # the (unwrapped) ContrastiveModel
    history: list  # one dict per logged step
    metrics: dict  # evaluation of the frozen encoder (rank 0; empty when disabled)
    checkpoint: Path | None
    steps: int


def seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, step, rank ...), independent for each tuple."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def build_model(cfg: dict, in_channels: int, image_hw, backbone: nn.Module | None = None) -> ContrastiveModel:
    """The config's ResNet (or a user ``backbone``) with a projector, and a predictor for MoCo v3."""
    m = cfg["model"]
    if isinstance(backbone, ContrastiveModel):
        return backbone
    if backbone is None:
        backbone = SmallResNet(in_channels, m["width"], m["blocks"], m["norm"], m["stem_stride"])
    elif not isinstance(backbone, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(backbone).__name__}")
    d = feature_dim(backbone, (in_channels, *image_hw))
    proj = ProjectionHead(d, m["proj_hidden"], m["proj_dim"], m["proj_layers"], m["proj_bn"])
    pred = ProjectionHead(m["proj_dim"], m["pred_hidden"], m["proj_dim"], 2, m["proj_bn"]) if m["predictor"] else None
    return ContrastiveModel(backbone, proj, pred)


def load_images(cfg: dict, split: str):
    """(uint8 images N x C x H x W tensor, labels) of the config's dataset and split."""
    from ..data.datasets import load_dataset, load_fashion_mnist

    d = cfg["data"]
    if d["dataset"] == "fashion-mnist" and d["root"]:
        ds = load_fashion_mnist(split, root=Path(d["root"]))
    else:
        ds = load_dataset(d["dataset"], split)
    if ds.kind != "image":
        raise ConfigError(f"config key 'data.dataset' must be an image dataset, {d['dataset']!r} is {ds.kind}")
    X = torch.as_tensor(np.asarray(ds.X))
    X = X[:, None] if X.ndim == 3 else X
    return X, torch.as_tensor(ds.y)


def _subset(X, y, n, seed, what):
    if n is None or n >= len(X):
        return X, y
    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed_of(seed, 7919, n)))[:n]
    return X[idx], (None if y is None else y[idx])


def _device(name: str, local_rank: int) -> torch.device:
    try:
        return resolve_device(name, local_rank)
    except ValueError as e:
        raise ConfigError(f"config key 'train.device': {e}") from None


def _init_distributed(device_name: str) -> tuple[int, int, int, bool]:
    """(rank, world, local_rank, we_initialised) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), False
    if world <= 1:
        return 0, 1, 0, False
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True


class _Student(nn.Module):
    """One forward for both views (one DDP call per step): projections, and predictions if any."""

    def __init__(self, model: ContrastiveModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor):
        z = self.model(x)
        return z, self.model.predict(z)


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _start_log(path: Path, fields: list, keep_until: int) -> None:
    """``log.csv`` with a header and the rows of an earlier run up to step ``keep_until`` (the
    checkpoint this run resumes from; 0 for a fresh start): the rows it logged after that step
    are dropped, since this run logs those steps again."""
    old = []
    if path.exists():
        with open(path, newline="") as f:
            old = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= keep_until]
    with atomic_write(path) as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(old)


def _append_log(path: Path, row: dict) -> None:
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore").writerow(row)


def _first_nonfinite(tree, name: str = "") -> str | None:
    """The name of the first tensor in a nest of dicts / lists with a NaN or Inf, or None."""
    if isinstance(tree, Tensor):
        return name if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for key, value in items:
        found = _first_nonfinite(value, f"{name}.{key}" if name else str(key))
        if found is not None:
            return found
    return None


def pretrain(config, images=None, labels=None, *, model: nn.Module | None = None, callbacks=(),
             resume: bool | str | os.PathLike = True, eval_data=None) -> PretrainResult:
    """Train a contrastive encoder as ``config`` says (a dict, validated here).

    Args:
        config: a (partial) config; see :mod:`iconlearn.train.config`.
        images, labels: training images (uint8 or float in [0, 1], N x C x H x W or N x H x W) and
            labels (needed by supcon and the evaluation). Default: the config's dataset, train split.
        model: a user backbone (any module mapping images to B x D features) or a full
            :class:`ContrastiveModel`; default the config's ResNet.
        callbacks: :class:`Callback` objects.
        resume: True to continue from ``out_dir/last.pt`` when it exists, a path to resume from
            that checkpoint, False to start afresh.
        eval_data: (test images, test labels) for the frozen-encoder evaluation; default the
            config's dataset, test split (when the training data came from the config).
    """
    cfg = validate_config(config)
    t = cfg["train"]
    if t["out_dir"]:  # before any work: a run that cannot save is found now, not after training
        check_writable_dir(t["out_dir"], "train.out_dir folder")
    with torch_threads(t["threads"]):
        rank, world, local_rank, own_group = _init_distributed(t["device"])
        device = _device(t["device"], local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            return _pretrain(cfg, images, labels, model, callbacks, resume, eval_data, rank, world, device)
        finally:
            if own_group:
                dist.barrier()
                dist.destroy_process_group()


def _pretrain(cfg, images, labels, user_model, callbacks, resume, eval_data, rank, world, device):
    """The run, stage by stage."""
    data = _prepare_data(cfg, images, labels, world, device)
    parts = _build_components(cfg, data, user_model, world, device)
    saver = _Checkpointer(cfg, parts, rank, world, data.global_batch, device, callbacks)
    resume_from = _resume_path(resume, saver.path)
    start = _restore(resume_from, parts, data.global_batch, device) if resume_from is not None else 0
    saver.keep_log_until = saver.saved_step = start
    if resume_from is not None and rank == 0:
        print(f"[iconlearn] resuming from {resume_from} at step {start} of {data.total}", flush=True)
    state = TrainState(start, data.total, data.steps_per_epoch, rank, world, parts.net, parts.optimizer, cfg)
    _train(state, parts, data, saver, callbacks, device)
    metrics = _evaluate(cfg, parts.net, data, eval_data, rank, device)
    return PretrainResult(parts.net, state.history, metrics, saver.path if saver.path and saver.path.exists() else None,
                          state.step)


@dataclass
class _Data:
    """The training images of this run and the step arithmetic that depends on them."""

    images: Tensor  # (N x C x H x W) as given (the evaluation samples them)
    labels: Tensor | None
    on_device: Tensor  # the images on the device, uint8 when given so (4x less memory)
    labels_on_device: Tensor | None
    batch_size: int  # per process
    global_batch: int
    steps_per_epoch: int
    total: int  # optimiser steps of the run
    augment: SimCLRAugment | None
    out_hw: tuple  # image size after augmentation
    from_config: bool  # the images are the config's dataset (then so is the evaluation's test set)


def _prepare_data(cfg, images, labels, world, device) -> _Data:
    """Validated training images and labels (the config's dataset by default), subsampled as the
    config says, on the device; the batch and step counts; the augmentation."""
    t, d_cfg, aug_cfg = cfg["train"], cfg["data"], cfg["augment"]
    from_config = images is None
    if from_config:
        images, labels = load_images(cfg, "train")
    if isinstance(images, np.ndarray) or not isinstance(images, Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must be N x C x H x W or N x H x W, got shape {tuple(images.shape)}")
    if labels is not None:
        labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
        V.check_labels(labels, images.shape[0])
    if cfg["method"]["name"] == "supcon" and labels is None:
        raise ConfigError("method 'supcon' needs labels for the training images")
    images, labels = _subset(images, labels, d_cfg["n_train"], t["seed"], "train")
    n, B = images.shape[0], t["batch_size"]
    GB = B * world
    if GB > n:
        per = f"{B} x {world} processes = {GB}" if world > 1 else str(B)
        raise ConfigError(f"batch size {per} is larger than the dataset ({n} images); lower train.batch_size")
    steps_per_epoch = n // GB
    aug = None
    if aug_cfg["enabled"]:
        aug = SimCLRAugment(aug_cfg["size"], tuple(aug_cfg["crop_scale"]), aug_cfg["flip"], aug_cfg["jitter"],
                            aug_cfg["blur_prob"], aug_cfg["noise_std"], jitter_prob=aug_cfg["jitter_prob"],
                            gray_prob=aug_cfg["gray_prob"])
    out_hw = (aug_cfg["size"], aug_cfg["size"]) if aug_cfg["size"] and aug else tuple(images.shape[2:])
    return _Data(images, labels, images.to(device), None if labels is None else labels.to(device), B, GB,
                 steps_per_epoch, t["max_steps"] or max(1, math.ceil(t["epochs"] * steps_per_epoch)), aug, out_hw,
                 from_config)


@dataclass
class _Components:
    """What a training step uses and a checkpoint saves."""

    net: ContrastiveModel  # the model, unwrapped
    student: nn.Module  # what the step calls: the model's projections and predictions (DDP-wrapped when distributed)
    method: Method
    teacher: EMA | None
    queue: Queue | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    base_lr: float
    amp_dtype: torch.dtype | None  # None: full precision


def _build_components(cfg, data: _Data, user_model, world, device) -> _Components:
    """The model (seeded by the config), the method's loss, an EMA teacher and a queue when the method
    uses them, DDP across processes, the optimiser and the mixed-precision scaler."""
    t, m_cfg, o_cfg = cfg["train"], cfg["method"], cfg["optim"]
    torch.manual_seed(t["seed"])
    net = build_model(cfg, data.images.shape[1], data.out_hw, user_model).to(device)
    ddp = world > 1
    method = Method(m_cfg, gather_distributed=ddp)
    teacher = EMA(net, m_cfg["ema_decay"]) if m_cfg["ema_decay"] is not None else None
    queue = Queue(m_cfg["queue_size"], cfg["model"]["proj_dim"]).to(device) if m_cfg["queue_size"] > 0 else None
    student = _Student(net)
    if ddp:
        if cfg["model"]["sync_bn"] and device.type != "cuda":
            raise ConfigError("config key 'model.sync_bn' needs CUDA (torch's SyncBatchNorm has no CPU kernel); "
                              "on CPU use model.norm=group and model.proj_bn=false for exact multi-process steps")
        if cfg["model"]["sync_bn"]:
            student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
            net = student.model
        student = nn.parallel.DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None)
    base_lr = o_cfg["lr"] * (data.global_batch / 256 if o_cfg["scale_lr"] else 1.0)
    opt = build_optimizer(net, o_cfg, base_lr)
    use_amp = t["amp"] and device.type == "cuda"
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if use_amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return _Components(net, student, method, teacher, queue, opt, scaler, base_lr, amp_dtype)


def _resume_path(resume, ckpt_path: Path | None) -> Path | None:
    """The checkpoint to continue from: ``out_dir/last.pt`` when ``resume`` is True and it exists,
    the path ``resume`` names, or None."""
    if resume in (False, None):
        return None
    if resume is True:
        return ckpt_path if ckpt_path is not None and ckpt_path.exists() else None
    return Path(resume)


def _restore(path: Path, parts: _Components, global_batch: int, device) -> int:
    """Load a checkpoint into the components (and the global RNG); returns its step."""
    ckpt = load_checkpoint(path, map_location=device)
    check_compatible(ckpt, parts.net, path)
    if ckpt.get("global_batch") != global_batch:
        raise CheckpointError(f"{path} was trained with a global batch of {ckpt.get('global_batch')}, "
                              f"this run has {global_batch}; an exact resume needs the same batch and process count")
    parts.net.load_state_dict(ckpt["model"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        parts.scaler.load_state_dict(ckpt["scaler"])
    if parts.teacher is not None:
        if ckpt.get("teacher") is None:
            raise CheckpointError(f"{path} has no EMA teacher but this config uses one")
        parts.teacher.module.load_state_dict(ckpt["teacher"])
    if parts.queue is not None:
        if ckpt.get("queue") is None:
            raise CheckpointError(f"{path} has no queue but this config uses one")
        parts.queue.load_state_dict(ckpt["queue"])
    _set_rng_state(ckpt["rng"], device)
    return int(ckpt["step"])


class _Checkpointer:
    """``out_dir/last.pt`` and ``out_dir/log.csv``: rank 0 writes both, every rank waits for it.

    Log rows are appended as they come (a crash keeps them); the first row of a run drops the rows
    an earlier run logged after ``keep_log_until`` (the step this run resumes from). A model or
    optimiser state with NaN or Inf is never saved: the last good checkpoint (``saved_step``) stays.
    """

    def __init__(self, cfg, parts: _Components, rank, world, global_batch, device, callbacks):
        out_dir = cfg["train"]["out_dir"]
        self.out_dir = Path(out_dir) if out_dir else None
        self.path = self.out_dir / "last.pt" if self.out_dir else None
        self.cfg, self.parts, self.rank, self.world = cfg, parts, rank, world
        self.global_batch, self.device, self.callbacks = global_batch, device, callbacks
        self.keep_log_until: int | None = 0
        self.saved_step = 0

    def log(self, row: dict) -> None:
        if self.out_dir is None or self.rank != 0:
            return
        path = self.out_dir / "log.csv"
        if self.keep_log_until is not None:
            _start_log(path, list(row), self.keep_log_until)
            self.keep_log_until = None
        _append_log(path, row)

    def save(self, state: TrainState) -> None:
        if self.path is None:
            return
        p = self.parts
        weights = {"model": p.net.state_dict(), "optimizer": p.optimizer.state_dict(),
                   "teacher": p.teacher.module.state_dict() if p.teacher is not None else None,
                   "queue": p.queue.state_dict() if p.queue is not None else None}
        bad = _first_nonfinite(weights)  # every rank checks (they hold the same weights), so all stop together
        if bad is not None:
            kept = f"{self.path} (step {self.saved_step}) is kept" if self.path.exists() else "nothing was saved"
            raise FloatingPointError(f"training diverged: {bad} holds NaN or Inf at step {state.step}, so no "
                                     f"checkpoint was written; {kept}. Lower optim.lr or set optim.grad_clip")
        if self.rank == 0:
            save_checkpoint({
                "step": state.step, "config": self.cfg, **weights, "model_signature": model_signature(p.net),
                "scaler": p.scaler.state_dict() if p.scaler.is_enabled() else {},
                "rng": _rng_state(self.device), "global_batch": self.global_batch, "world_size": self.world,
            }, self.path)
            self.saved_step = state.step
            for cb in self.callbacks:
                cb.on_checkpoint(state, self.path)
        if self.world > 1:
            dist.barrier()


def _train(state: TrainState, parts: _Components, data: _Data, saver: _Checkpointer, callbacks, device) -> None:
    """Steps from ``state.step`` to ``state.total_steps`` (or until a callback stops), with logging, the
    progress bar and periodic checkpoints; a last checkpoint at the end. Ctrl-C finishes the current
    step, saves, and raises :class:`~iconlearn._runtime.Interrupted` saying how to resume."""
    t = state.config["train"]
    start, total = state.step, state.total_steps
    for cb in callbacks:
        cb.on_train_start(state)
    bar = None
    if t["progress"] and state.rank == 0 and start < total:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc=f"pretrain {state.config['method']['name']}", dynamic_ncols=True)
    perm_epoch, perm = -1, None
    gen = torch.Generator(device=device)
    parts.net.train()
    tick = time.perf_counter()
    t0 = tick
    interrupted = False
    with stop_on_sigint("saving a checkpoint after this step" if saver.path else "stopping after this step") as ctrl_c:
        for step in range(start, total):
            epoch, pos = divmod(step, data.steps_per_epoch)
            if epoch != perm_epoch:  # the data order of epoch e is drawn from (seed, e)
                perm = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed_of(t["seed"], epoch)))
                perm, perm_epoch = perm.to(device), epoch
            B, GB = data.batch_size, data.global_batch
            idx = perm[pos * GB + state.rank * B: pos * GB + (state.rank + 1) * B]
            loss_value, lr = _train_step(step, idx, state, parts, data, gen, device)
            state.step = step + 1
            interrupted = _any_rank(ctrl_c.is_set(), state.world_size, device)  # then this step is logged and saved
            logs = {"step": state.step, "epoch": round(state.step / data.steps_per_epoch, 4), "loss": loss_value, "lr": lr}
            if state.step % t["log_every"] == 0 or state.step == total or interrupted:
                now = time.perf_counter()
                logs["images_per_s"] = round(GB * min(t["log_every"], state.step - start) / max(now - tick, 1e-9), 1)
                logs["elapsed_s"] = round(now - t0, 2)
                tick = now
                state.history.append(logs)
                saver.log(logs)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.3g}")
            if bar is not None:
                bar.update(1)
            for cb in callbacks:
                cb.on_step_end(state, logs)
            if t["ckpt_every"] and state.step % t["ckpt_every"] == 0 and state.step < total and not interrupted:
                saver.save(state)
            if state.stop or interrupted:
                break
    if bar is not None:
        bar.close()
    if state.step == total or state.stop or interrupted:
        saver.save(state)
    if interrupted:
        saved = (f"{saver.path} and {saver.out_dir / 'log.csv'} saved; run it again with the same config and "
                 f"out_dir to resume" if saver.path else "nothing saved (no train.out_dir)")
        raise Interrupted(f"interrupted at step {state.step} of {total}: {saved}")
    for cb in callbacks:
        cb.on_train_end(state)


def _any_rank(flag: bool, world: int, device) -> bool:
    """``flag``, or when distributed whether any rank has it (so that every rank stops at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _train_step(step: int, idx: Tensor, state: TrainState, parts: _Components, data: _Data, gen: torch.Generator,
                device) -> tuple[float, float]:
    """One optimiser step on the images ``idx``: two augmented views (drawn from (seed, step, rank)),
    the method's loss, backward, the optimiser, the teacher and the queue. Returns (the loss averaged
    over the ranks, the learning rate)."""
    t, o_cfg = state.config["train"], state.config["optim"]
    x = data.on_device[idx]
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    y = data.labels_on_device[idx] if data.labels_on_device is not None else None
    if data.augment is not None:
        gen.manual_seed(seed_of(t["seed"], step, state.rank))
        v1, v2 = data.augment(x, generator=gen), data.augment(x, generator=gen)
    else:
        v1, v2 = x, x
    lr = lr_at(step, state.total_steps, parts.base_lr, o_cfg["warmup_steps"], o_cfg["schedule"])
    for g in parts.optimizer.param_groups:
        g["lr"] = lr
    teacher, queue = parts.teacher, parts.queue
    amp = torch.autocast("cuda", dtype=parts.amp_dtype) if parts.amp_dtype is not None else contextlib.nullcontext()
    with amp:
        z, pred = parts.student(torch.cat([v1, v2]))  # projections, and the predictor's outputs (MoCo v3)
        k = teacher(torch.cat([v1, v2])) if teacher is not None else None
    z, pred = z.float(), pred.float()
    if not bool(torch.isfinite(z).all()):
        raise FloatingPointError(f"the model's outputs became NaN or Inf at step {step}: training diverged; lower "
                                 "optim.lr or set optim.grad_clip")
    pred1, pred2 = pred.chunk(2)
    if teacher is not None:
        k1, k2 = k.float().chunk(2)
    elif queue is not None:
        k1, k2 = z.chunk(2)
    else:
        k1 = k2 = None
    extra = queue.get() if queue is not None else None
    loss = parts.method(pred1, pred2, y, k1, k2, extra)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss became {loss.item()} at step {step}; lower optim.lr or check the data")
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    if o_cfg["grad_clip"]:
        parts.scaler.unscale_(parts.optimizer)
        nn.utils.clip_grad_norm_(parts.net.parameters(), o_cfg["grad_clip"])
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    if teacher is not None:
        teacher.update(parts.net)
    if queue is not None:
        keys = torch.cat([k1, k2]).detach()
        if state.world_size > 1:
            from ..distributed import gather

            keys = gather(keys)[0]
        queue.push(keys)
    loss_value = float(loss.detach())
    if state.world_size > 1:
        lt = torch.tensor([loss_value], device=device)
        dist.all_reduce(lt)
        loss_value = float(lt) / state.world_size
    return loss_value, lr


def _evaluate(cfg, net: nn.Module, data: _Data, eval_data, rank: int, device) -> dict:
    """The frozen encoder on held-out images (rank 0, when enabled and there are labels): kNN,
    linear probe and optionally clustering, written to ``out_dir/metrics.json``; the held-out
    images' features and labels to ``out_dir/embeddings.npy`` and ``labels.npy`` (the input of
    ``iconlearn cluster --features`` and ``iconlearn embed --features``)."""
    t, ev = cfg["train"], cfg["eval"]
    if not (ev["enabled"] and data.labels is not None and rank == 0 and (eval_data is not None or data.from_config)):
        return {}
    from ..evaluation import evaluate_features
    from ..metrics.probe import extract_features

    if eval_data is None:
        Xte, yte = load_images(cfg, "test")
    else:
        Xte, yte = eval_data
        Xte = torch.as_tensor(np.asarray(Xte)) if not isinstance(Xte, Tensor) else Xte
    Xte, yte = _subset(Xte, torch.as_tensor(np.asarray(yte)), cfg["data"]["n_test"], t["seed"], "test")
    Xref, yref = _subset(data.images, data.labels.cpu(), ev["n_train"], t["seed"] + 1, "eval")
    Fref, Fte = (extract_features(net, X, progress=t["progress"]) for X in (Xref, Xte))
    if t["out_dir"]:
        save_npy(Path(t["out_dir"]) / "embeddings.npy", Fte)
        save_npy(Path(t["out_dir"]) / "labels.npy", np.asarray(yte))
    metrics = evaluate_features(Fref, yref.numpy(), Fte, np.asarray(yte), knn_k=ev["knn_k"], probe=ev["probe"],
                                cluster=ev["cluster"], n_clusters=ev["n_clusters"], seed=t["seed"], device=device,
                                probe_backend=ev["probe_backend"] if ev["probe_backend"] != "auto"
                                else ("torch" if device.type == "cuda" else "sklearn"))
    if t["out_dir"]:
        with atomic_write(Path(t["out_dir"]) / "metrics.json") as f:
            f.write(json.dumps(metrics, indent=2))
    return metrics
