"""Mappers: clustering heads, EMA teacher, encoders, memory bank."""
from .ema import EMA
from .heads import MultiHead, MultiLinear, keep_heads

__all__ = ["EMA", "MultiHead", "MultiLinear", "keep_heads"]
