"""Where and how torch runs: the device, the thread count, seeded randomness, and Ctrl-C.

Every front door (estimators, the pretraining loop) resolves its ``device`` here, and none of
them leaves the process-wide state of torch changed behind it: thread counts are set and
restored, and randomness comes from local generators (``torch.Generator``,
``np.random.default_rng``) seeded from ``random_state``.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["resolve_device", "resolve_seed", "draw_seed", "torch_seeded", "torch_threads", "resolve_n_jobs",
           "limit_threads", "Interrupted", "stop_on_sigint"]


def resolve_device(device="auto", local_rank: int | None = None) -> torch.device:
    """``"auto"`` (or None): CUDA when available, else CPU; ``local_rank`` picks the process's GPU
    under torchrun (``"cuda"`` then means ``cuda:<local_rank>``). Asking for CUDA on a machine
    without a GPU is an error here, not a crash later."""
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda" if local_rank is None else f"cuda:{local_rank}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asks for CUDA but torch sees no GPU; use device='cpu'")
        if dev.index is None and local_rank is not None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def resolve_seed(random_state) -> int:
    """The seed of a run: ``random_state`` as given (an integer), one drawn from a numpy
    ``RandomState`` / ``Generator`` passed instead (as scikit-learn allows), or a fresh one from the
    OS for None; an int either way, so that a run can replay its own stream (e.g. a second pass
    over the same batches)."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy % 2**31)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    if isinstance(random_state, np.random.Generator):
        return draw_seed(random_state)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) \
            or not 0 <= random_state < 2**32:
        raise ValueError(f"random_state must be None, an integer in [0, 2^32) or a numpy RandomState / Generator, "
                         f"got {random_state!r}")
    return int(random_state)


def draw_seed(rng: np.random.Generator) -> int:
    """A 31-bit seed drawn from ``rng``, to seed a torch generator from a numpy one."""
    return int(rng.integers(2**31))


@contextmanager
def torch_seeded(seed: int):
    """torch's global CPU generator seeded with ``seed`` inside the block and restored after it, for
    torch calls that take no generator (module initialisation, ``torch.svd_lowrank``)."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(seed))
        yield


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (None or 0: unchanged), then restore the count."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)


def resolve_n_jobs(n_jobs) -> int:
    """A thread count from scikit-learn's ``n_jobs``: a positive count as given; None or -1 for all
    the physical cores this process may use (its CPU affinity and container quota count), -2 for
    all but one, and so on."""
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0):
        raise ValueError(f"n_jobs must be a positive number of threads, or -1 for all cores (-2 all but one, ...); "
                         f"got {n_jobs!r}")
    if n_jobs is not None and n_jobs > 0:
        return int(n_jobs)
    from joblib import cpu_count

    cores = cpu_count(only_physical_cores=True)
    return max(1, cores + 1 + int(n_jobs)) if n_jobs is not None else cores


@contextmanager
def limit_threads(n: int):
    """Run the block with at most ``n`` threads in each pool that computes: torch's intra-op
    threads, numba's, and the BLAS / OpenMP pools of numpy, scipy and faiss (threadpoolctl);
    every count is restored after the block."""
    from threadpoolctl import threadpool_limits

    numba = sys.modules.get("numba")  # only when loaded: no import for the sake of a limit
    before = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    try:
        with torch_threads(n), threadpool_limits(int(n)):
            yield
    finally:
        if numba is not None:
            numba.set_num_threads(before)


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C after it saved what it had; the message says what was kept and how
    to go on (the ``iconlearn`` command prints it as its one line)."""


@contextmanager
def stop_on_sigint(what: str = "saving after this step"):
    """Inside the block the first Ctrl-C (SIGINT) only sets the yielded ``threading.Event`` (and
    says ``what`` happens now), so that a loop can finish its step and save; a second Ctrl-C
    interrupts at once. Signals reach only the main thread: elsewhere Ctrl-C works as usual."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        print(f"\n[iconlearn] Ctrl-C: {what} (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
