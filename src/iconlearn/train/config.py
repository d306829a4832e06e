"""Pretraining configs: a nested dict of sections, checked strictly against :data:`SCHEMA`.

Every key has a type and a default; an unknown key, a wrong type or a value out of its choices is
rejected with the key's dotted name before anything is built. ``key=value`` overrides (values
parsed as YAML) are applied on top of the file, e.g. ``method.temperature=0.2``.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from .._validation import did_you_mean

__all__ = ["SCHEMA", "METHODS", "KERNELS", "default_config", "load_config", "validate_config", "apply_overrides",
           "ConfigError"]


class ConfigError(ValueError):
    """A config that cannot be trained; the message names the offending key."""


METHODS = ("simclr", "kernel_infonce", "supcon", "gntxent")
# kernel name -> (gamma or None, mixture): the exponential kernels exp(-||x - y||^gamma / tau) of Kernel-InfoNCE
KERNELS = {
    "gaussian": (2.0, None),
    "laplacian": (1.0, None),
    "exponential": (None, None),  # gamma from method.gamma
    "sum": (None, "sum"),  # Gaussian + Laplacian, simple sum on one embedding
    "concat": (None, "concat"),  # Gaussian and Laplacian on two halves of the embedding
}

_INT, _FLOAT, _STR, _BOOL = "int", "float", "str", "bool"

# section -> key -> (type, default, choices or None); a type ending in "?" allows null,
# "list[float]" / "list[int]" are lists.
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {
        "dataset": (_STR, "fashion-mnist", None),
        "root": (_STR + "?", None, None),  # folder of the IDX files for fashion-mnist
        "n_train": (_INT + "?", None, None),  # random subset of the training images
        "n_test": (_INT + "?", None, None),  # random subset of the test images for evaluation
    },
    "augment": {
        "enabled": (_BOOL, True, None),
        "size": (_INT + "?", None, None),
        "crop_scale": ("list[float]", [0.2, 1.0], None),
        "flip": (_BOOL, True, None),
        "jitter": (_FLOAT, 0.4, None),
        "jitter_prob": (_FLOAT, 0.8, None),
        "gray_prob": (_FLOAT, 0.2, None),
        "blur_prob": (_FLOAT, 0.5, None),
        "noise_std": (_FLOAT, 0.0, None),
    },
    "model": {
        "encoder": (_STR, "resnet", ("resnet",)),
        "width": (_INT, 32, None),
        "blocks": ("list[int]", [1, 1, 1, 1], None),
        "norm": (_STR, "batch", ("batch", "group", "none")),
        "stem_stride": (_INT, 1, (1, 2)),
        "sync_bn": (_BOOL, False, None),
        "proj_hidden": (_INT, 512, None),
        "proj_dim": (_INT, 128, None),
        "proj_layers": (_INT, 2, None),
        "proj_bn": (_BOOL, True, None),  # BatchNorm1d between the projector's layers
        "predictor": (_BOOL, False, None),
        "pred_hidden": (_INT, 512, None),
    },
    "method": {
        "name": (_STR, "simclr", METHODS),
        "kernel": (_STR + "?", None, tuple(KERNELS)),
        "gamma": (_FLOAT, 2.0, None),
        # Kernel-InfoNCE mixtures: one softmax over the summed kernel (the paper) or lambda L_1 + (1 - lambda) L_2 (the authors' code)
        "mixture_form": (_STR, "kernel", ("kernel", "loss")),
        "mixture_lambda": (_FLOAT, 0.5, None),  # weight of the Laplacian part (loss form: of its loss)
        "temperature": (_FLOAT, 0.5, None),
        "ema_decay": (_FLOAT + "?", None, None),  # MoCo v3 teacher when set
        "queue_size": (_INT, 0, None),  # MoCo queue of teacher (or own) keys as extra negatives
    },
    "optim": {
        "name": (_STR, "sgd", ("sgd", "adam", "adamw", "lars")),
        "lr": (_FLOAT, 0.3, None),  # base lr for batch 256, scaled linearly with the global batch
        "scale_lr": (_BOOL, True, None),
        "weight_decay": (_FLOAT, 1e-4, None),
        "momentum": (_FLOAT, 0.9, None),
        "warmup_steps": (_INT, 0, None),
        "schedule": (_STR, "cosine", ("cosine", "constant")),
        "grad_clip": (_FLOAT + "?", None, None),
    },
    "train": {
        "batch_size": (_INT, 256, None),  # per process
        "epochs": (_FLOAT, 1.0, None),
        "max_steps": (_INT + "?", None, None),  # overrides epochs
        "seed": (_INT, 0, None),
        "device": (_STR, "auto", None),
        "amp": (_BOOL, True, None),  # mixed precision on CUDA (ignored on CPU)
        "out_dir": (_STR + "?", None, None),
        "ckpt_every": (_INT, 0, None),  # steps between checkpoints (0: only at the end)
        "log_every": (_INT, 10, None),
        "progress": (_BOOL, True, None),
        "threads": (_INT + "?", None, None),
    },
    "eval": {
        "enabled": (_BOOL, True, None),
        "knn_k": (_INT, 20, None),
        "n_train": (_INT + "?", None, None),  # random subset of the training images as the kNN / probe reference
        "probe": (_BOOL, True, None),
        "probe_backend": (_STR, "auto", ("auto", "sklearn", "torch")),  # auto: torch on CUDA, sklearn on CPU
        "cluster": (_BOOL, False, None),
        "n_clusters": (_INT + "?", None, None),
    },
}


def default_config() -> dict:
    return {s: {k: copy.deepcopy(v[1]) for k, v in keys.items()} for s, keys in SCHEMA.items()}


def _check_type(key: str, value: Any, typ: str) -> Any:
    optional = typ.endswith("?")
    base = typ.rstrip("?")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key!r} must be a {base}, got null")
    if base.startswith("list["):
        inner = base[5:-1]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list of {inner}, got {type(value).__name__} {value!r}")
        return [_check_type(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if base == _BOOL:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {type(value).__name__} {value!r}")
        return value
    if base == _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if base == _FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} must be finite, got {value!r}")
        return float(value)
    if base == _STR:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {type(value).__name__} {value!r}")
        return value
    raise AssertionError(typ)  # pragma: no cover


def _positive(cfg, key, allow_zero=False):
    s, k = key.split(".")
    v = cfg[s][k]
    if v is not None and (v < 0 or (v == 0 and not allow_zero)):
        raise ConfigError(f"config key {key!r} must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")


def validate_config(raw: dict) -> dict:
    """A full config (defaults filled in) from a partial nested dict; raises :class:`ConfigError`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    cfg = default_config()
    for section, values in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"unknown config section {section!r}{did_you_mean(section, SCHEMA)}; "
                              f"sections are {sorted(SCHEMA)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} must be a mapping, got {type(values).__name__}")
        for key, value in values.items():
            name = f"{section}.{key}"
            if key not in SCHEMA[section]:
                raise ConfigError(f"unknown config key {name!r}{did_you_mean(key, SCHEMA[section])}; "
                                  f"keys of {section!r} are {sorted(SCHEMA[section])}")
            typ, _, choices = SCHEMA[section][key]
            value = _check_type(name, value, typ)
            if choices is not None and value is not None and value not in choices:
                raise ConfigError(f"config key {name!r} must be one of {list(choices)}, got {value!r}"
                                  f"{did_you_mean(value, choices)}")
            cfg[section][key] = value
    _check_values(cfg)
    return cfg


def _check_values(cfg: dict) -> None:
    for key in ("model.width", "model.proj_hidden", "model.proj_dim", "model.proj_layers", "model.pred_hidden",
                "method.temperature", "method.gamma", "optim.lr", "train.batch_size", "train.epochs",
                "train.log_every", "eval.knn_k", "train.max_steps", "data.n_train", "data.n_test", "augment.size",
                "train.threads", "eval.n_clusters", "eval.n_train"):
        _positive(cfg, key)
    for key in ("optim.weight_decay", "optim.momentum", "optim.warmup_steps", "train.ckpt_every", "method.queue_size",
                "augment.noise_std", "augment.jitter"):
        _positive(cfg, key, allow_zero=True)
    if any(b < 1 for b in cfg["model"]["blocks"]) or not cfg["model"]["blocks"]:
        raise ConfigError(f"config key 'model.blocks' must be a non-empty list of positive ints, got {cfg['model']['blocks']}")
    cs = cfg["augment"]["crop_scale"]
    if len(cs) != 2 or not 0 < cs[0] <= cs[1] <= 1:
        raise ConfigError(f"config key 'augment.crop_scale' must be [low, high] with 0 < low <= high <= 1, got {cs}")
    for key in ("jitter_prob", "gray_prob", "blur_prob"):
        if not 0 <= cfg["augment"][key] <= 1:
            raise ConfigError(f"config key 'augment.{key}' must be a probability in [0, 1], got {cfg['augment'][key]}")
    if cfg["augment"]["jitter"] >= 1:
        raise ConfigError(f"config key 'augment.jitter' must lie in [0, 1), got {cfg['augment']['jitter']}")
    m = cfg["method"]
    if m["ema_decay"] is not None and not 0 <= m["ema_decay"] < 1:
        raise ConfigError(f"config key 'method.ema_decay' must lie in [0, 1), got {m['ema_decay']}")
    if not 0 < m["mixture_lambda"] < 1:
        raise ConfigError(f"config key 'method.mixture_lambda' must lie in (0, 1), got {m['mixture_lambda']}")
    if m["mixture_form"] == "loss" and m["kernel"] not in ("sum", "concat"):
        raise ConfigError("config key 'method.mixture_form' = 'loss' weighs the losses of a mixture: "
                          "set 'method.kernel' to 'sum' or 'concat'")
    if m["name"] == "kernel_infonce" and m["kernel"] is None:
        raise ConfigError(f"method 'kernel_infonce' needs 'method.kernel', one of {list(KERNELS)}")
    if m["kernel"] is not None and m["name"] != "kernel_infonce":
        raise ConfigError(f"'method.kernel' is only used by method 'kernel_infonce', not {m['name']!r}; "
                          "use --method kernel_infonce or drop the kernel")
    if m["name"] == "supcon" and (m["ema_decay"] is not None or m["queue_size"] > 0):
        raise ConfigError("method 'supcon' does not take 'method.ema_decay' or 'method.queue_size'")
    if m["name"] == "gntxent" and (m["ema_decay"] is not None or m["queue_size"] > 0):
        raise ConfigError("method 'gntxent' does not take 'method.ema_decay' or 'method.queue_size'")
    if cfg["model"]["predictor"] and m["ema_decay"] is None:
        raise ConfigError("'model.predictor' is for the MoCo v3 teacher: set 'method.ema_decay' too")
    dev = cfg["train"]["device"]
    if not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise ConfigError(f"config key 'train.device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")


def _parse_override(item: str) -> tuple[str, str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=0.1)")
    key, text = item.split("=", 1)
    if key.count(".") != 1:
        raise ConfigError(f"override key {key!r} must be section.key (e.g. train.batch_size)")
    section, name = key.split(".")
    try:
        value = yaml.safe_load(text) if text != "" else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from None
    return section, name, value


def apply_overrides(raw: dict, overrides) -> dict:
    """``raw`` with ``section.key=value`` strings applied (values parsed as YAML)."""
    raw = copy.deepcopy(raw or {})
    for item in overrides or []:
        section, name, value = _parse_override(item)
        if section not in raw or raw[section] is None:
            raw[section] = {}
        raw[section][name] = value
    return raw


def load_config(path=None, overrides=None) -> dict:
    """Read a YAML config (or start from the defaults), apply overrides, validate."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {str(p)!r} {'is a folder' if p.is_dir() else 'does not exist'}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{p} is not a YAML text file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    return validate_config(apply_overrides(raw, overrides))
