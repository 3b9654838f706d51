"""Nipype interfaces of brainenc, one module per stage.

- :mod:`.stimuli`: tune each model, featurize the stories (subject-independent);
- :mod:`.encoding`: clean BOLD, build designs, fit and compare encoding models;
- :mod:`.derivatives`: render maps, sidecars and cleaned BOLD in the node folder;
- :mod:`.reports`: render the participant report in the node folder;
- :mod:`.sinks`: :class:`DerivativesSink` and :class:`StoreSink`, the only steps
  that write derivatives to OUTPUT_DIR.

Each interface passes typed file paths and values; the work is done by plain
functions that can be called and tested without nipype. Interfaces that may use
the GPU have a ``use_gpu`` input, which nipype's MultiProc plugin reads to give
each GPU job its own slot (``n_gpu_procs``). A failing interface leaves a
structured record in its node folder (:mod:`.base`).
"""

from .base import FAILURE_RECORD, BrainencInterface, read_failure, write_settings
from .derivatives import WriteCleanBold, WriteComparison, WriteVariant
from .encoding import BuildDesigns, CompareVariants, FitEncoding, PrepareBold
from .reports import ParticipantReport
from .sinks import DerivativesSink, StoreSink
from .stimuli import FeaturizeStories, TuneModel

__all__ = [
    "FAILURE_RECORD",
    "BrainencInterface",
    "BuildDesigns",
    "CompareVariants",
    "DerivativesSink",
    "FeaturizeStories",
    "FitEncoding",
    "ParticipantReport",
    "PrepareBold",
    "StoreSink",
    "TuneModel",
    "WriteCleanBold",
    "WriteComparison",
    "WriteVariant",
    "read_failure",
    "write_settings",
]
