"""brainenc: a BIDS-App for voxel-wise encoding models of language-model features.

The command line is :mod:`bids_app.cli`; the pipeline is assembled in
:mod:`bids_app.run`. Language models live in the separate :mod:`stimuli_models`
package, which this one imports (never the reverse).
"""

from ._version import __version__  # noqa: F401
