"""brainenc: a BIDS-App for voxel-wise encoding models of language-model features.

The command line is :mod:`bids_app.cli`; the pipeline is assembled in
:mod:`bids_app.run`. Language models live in the separate :mod:`stimuli_models`
package, which this one imports (never the reverse). From Python, one call turns
a participant of a BIDS dataset into designs, BOLD and estimators::

    from bids_app import encoding_from_bids
    data = encoding_from_bids("/data/ds", "01")

The Python API is imported on first use, so that ``brainenc --help`` stays instant.
"""

from ._version import __version__  # noqa: F401

__all__ = ["EncodingData", "encoding_from_bids"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
