"""Mappers: clustering heads, EMA teacher, encoders, memory bank."""
from .ema import EMA

__all__ = ["EMA"]
