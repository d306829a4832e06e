"""Mappers: clustering heads, EMA teacher, encoders, memory bank."""
from .ema import EMA
from .heads import MultiHead, MultiLinear

__all__ = ["EMA", "MultiHead", "MultiLinear"]
