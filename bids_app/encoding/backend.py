"""The one place that decides the compute device and himalaya's backend."""

from __future__ import annotations

from ..errors import ResourceError

BACKENDS = ("auto", "numpy", "torch", "torch_cuda")


def choose_backend(requested: str = "auto", device: str = "auto") -> str:
    """Pick himalaya's backend from the spec's ``encoding.backend`` and ``--device``.

    Parameters
    ----------
    requested : {'auto', 'numpy', 'torch', 'torch_cuda'}
        Backend named in the spec.
    device : {'auto', 'cpu', 'cuda'}
        The ``--device`` option.

    Returns
    -------
    str
        A himalaya backend name.
    """
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ResourceError(
            "--device cuda was requested but no CUDA GPU is visible; pass the GPU to the "
            "container ('docker run --gpus all', 'apptainer run --nv') or use --device auto."
        )
    if requested == "torch_cuda" and not has_cuda:
        raise ResourceError("encoding.backend = 'torch_cuda' needs a CUDA GPU; none is visible "
                            "(use 'auto' to fall back to the CPU).")
    if requested != "auto":
        return requested
    if has_cuda and device != "cpu":
        return "torch_cuda"
    return "torch"


def use_backend(name: str):
    """Activate a himalaya backend in this process and return it."""
    from himalaya.backend import set_backend

    return set_backend(name, on_error="raise")
