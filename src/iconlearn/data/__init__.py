"""Real datasets (docs/data.md), frozen-encoder features with an on-disk cache, tensor augmentations."""
from .augment import SimCLRAugment, to_image_tensor
from .datasets import LOADERS, Dataset, DataMissingError, load_dataset

__all__ = ["SimCLRAugment", "to_image_tensor", "LOADERS", "Dataset", "DataMissingError", "load_dataset"]
