"""Real datasets (DATA.md), frozen-encoder features with an on-disk cache, tensor augmentations."""
from .datasets import LOADERS, Dataset, DataMissingError, load_dataset

__all__ = ["LOADERS", "Dataset", "DataMissingError", "load_dataset"]
