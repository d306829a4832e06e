"""Contrastive pretraining from pixels: one loop for every method (:func:`pretrain`), strict
configs, checkpoints that resume exactly, and the methods as choices of p and q."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import KERNELS, METHODS, ConfigError, default_config, load_config, validate_config
from .loop import Callback, PretrainResult, StepTimer, TrainState, build_model, load_images, pretrain
from .methods import Method, build_loss, key_contrast

__all__ = ["StepTimer", "CheckpointError", "load_checkpoint", "save_checkpoint", "KERNELS", "METHODS", "ConfigError",
           "default_config", "load_config", "validate_config", "Callback", "PretrainResult", "TrainState",
           "build_model", "load_images", "pretrain", "Method", "build_loss", "key_contrast"]
