"""``iconlearn pretrain``: contrastive pretraining from pixels with any method of the library.

    iconlearn pretrain --config configs/digits_simclr.yaml          # under a minute on a CPU
    iconlearn pretrain --config configs/fmnist_simclr.yaml
    iconlearn pretrain --method kernel_infonce --kernel laplacian train.max_steps=500 train.out_dir=runs/lap
    torchrun --nproc_per_node=2 -m iconlearn.cli pretrain --config configs/fmnist_simclr.yaml

Overrides are ``section.key=value`` (values parsed as YAML). The run writes ``last.pt``,
``log.csv`` and ``metrics.json`` to ``train.out_dir`` and resumes from ``last.pt`` when it exists;
with the evaluation on, also ``embeddings.npy`` and ``labels.npy``: the frozen encoder's features
of the test images, ready for ``iconlearn cluster --features`` and ``iconlearn embed --features``.
Ctrl-C saves a checkpoint after the current step; the same command then resumes.
"""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..train.config import KERNELS, METHODS

    p = subparsers.add_parser("pretrain", help="contrastive pretraining from pixels (SimCLR, Kernel-InfoNCE, ...)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="YAML config (see configs/); defaults apply to missing keys")
    p.add_argument("--method", choices=METHODS, help="shortcut for method.name")
    p.add_argument("--kernel", choices=list(KERNELS), help="shortcut for method.kernel (kernel_infonce)")
    p.add_argument("--out-dir", help="shortcut for train.out_dir")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh (over an earlier run in out_dir only with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="with --no-resume: write over the run in out_dir")
    p.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.config import load_config

    overrides = list(args.overrides)
    if args.method:
        overrides.append(f"method.name={args.method}")
        if args.method != "kernel_infonce" and not args.kernel:
            overrides.append("method.kernel=")  # a config's kernel does not apply to another method
    if args.kernel:
        if args.method is None and not any(o.startswith("method.name=") for o in overrides):
            overrides.append("method.name=kernel_infonce")
        overrides.append(f"method.kernel={args.kernel}")
    if args.out_dir:
        overrides.append(f"train.out_dir={args.out_dir}")
    cfg = load_config(args.config, overrides)  # every error is raised here, before any training
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False))
        return 0
    out_dir = cfg["train"]["out_dir"]
    if args.no_resume and out_dir and (Path(out_dir) / "last.pt").exists() and not args.overwrite:
        raise ValueError(f"{out_dir} holds an earlier run (last.pt): drop --no-resume to resume it, add --overwrite to "
                         "start afresh over it, or choose another --out-dir")
    from ..train import pretrain

    result = pretrain(cfg, resume=not args.no_resume)
    if result.metrics:
        print(json.dumps({"steps": result.steps, **result.metrics}, indent=2))
    if result.checkpoint:
        print(f"checkpoint: {result.checkpoint}")
    emb = Path(out_dir or ".") / "embeddings.npy"
    if out_dir and result.metrics and emb.exists():
        labels = emb.with_name("labels.npy")
        print(f"test-image embeddings: {emb}, {labels}; cluster them with\n"
              f"  iconlearn cluster --features {emb} --labels {labels} --out {Path(out_dir) / 'cluster'}")
    return 0
