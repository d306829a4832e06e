"""Plain-Python helpers of the float64 loop references the loss tests compare against."""
import math

import torch

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=gen(seed), dtype=DT)


def unit(v):
    n = math.sqrt(sum(float(a) ** 2 for a in v))
    return [float(a) / n for a in v]


def dot(a, b):
    return sum(float(x) * float(y) for x, y in zip(a, b))


def dist(a, b, p=2.0):
    return sum(abs(float(x) - float(y)) ** p for x, y in zip(a, b)) ** (1.0 / p)


def logsumexp(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))
