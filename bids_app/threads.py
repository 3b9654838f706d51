"""Bound the BLAS/OpenMP/torch threads a process uses (``--omp-nthreads``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def limit_threads(n_threads: int) -> Iterator[None]:
    """Limit BLAS, OpenMP and torch intra-op threads within the block (0: no limit)."""
    if not n_threads or n_threads < 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch_before = None
    try:
        import torch

        torch_before = torch.get_num_threads()
        torch.set_num_threads(n_threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        if torch_before is not None:
            import torch

            torch.set_num_threads(torch_before)
