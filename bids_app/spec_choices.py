"""The choices of the experiment spec's settings, as ``Literal`` types.

Each choice type is derived from the module that implements the choices, so a
method, task type or strategy is named in one place only:

- :data:`TuningMethodName`: the names in :data:`stimuli_models.tuning.METHODS`;
- :data:`TaskType`: :data:`stimuli_models.tasks.TASK_TYPES`, or ``""`` (given by
  a known ``hub`` benchmark);
- :data:`ConfoundStrategy`: :data:`bids_app.io.confounds.STRATEGIES`, or ``""``
  (no confounds);
- :data:`NuisanceBand`: :data:`stimuli_models.nuisance.NUISANCE_BANDS`.

:data:`HrfModel` lists the HRF models of :mod:`bids_app.alignment` (a module of a
higher layer, which this one cannot import: a test keeps the two equal).
:data:`OuterCV` is two fixed schemes or ``'<K>-fold'``: a ``Literal`` in a union
with ``Annotated[str, Pattern(...)]``, which :func:`bids_app.spec_types.check_value`
checks as one choice ("'encoding.outer_cv' must be one of {'<K>-fold',
'leave-one-run-out', 'leave-one-story-out'} with K >= 2; got '1-fold'.").

The registry of tuning methods is read when this module is imported: a method
registered later (:func:`stimuli_models.tuning.register_method`) can be used
from Python, but is not a choice of a spec file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from stimuli_models.nuisance import NUISANCE_BANDS
from stimuli_models.tasks import TASK_TYPES
from stimuli_models.tuning import registered_methods

from .io.confounds import REGRESSION_MODES, STRATEGIES
from .spec_types import Pattern

__all__ = ["K_FOLD", "ConfoundStrategy", "HrfModel", "NuisanceBand", "OuterCV",
           "RegressionMode", "TaskType", "TuningMethodName"]

#: Tuning methods (``[[variants]] method``): the registry's names.
TuningMethodName = Literal[registered_methods()]  # type: ignore[valid-type]
#: NLU task types (``[[tasks]] type``); ``""``: the type of a known ``hub`` benchmark.
TaskType = Literal[("", *TASK_TYPES)]  # type: ignore[valid-type]
#: fMRIPrep confound strategies (``[bold] confounds``); ``""``: none.
ConfoundStrategy = Literal[("", *STRATEGIES)]  # type: ignore[valid-type]
#: Where confound regression is fitted (``[bold] confound_regression``).
RegressionMode = Literal[REGRESSION_MODES]  # type: ignore[valid-type]
#: Low-level nuisance bands (``[features] nuisance``).
NuisanceBand = Literal[NUISANCE_BANDS]  # type: ignore[valid-type]
#: HRF models (the names of ``bids_app.alignment.HRF_MODELS``, which a test keeps equal).
HrfModel = Literal["glover", "glover + derivative", "glover + derivative + dispersion", "spm",
                   "spm + derivative", "spm + derivative + dispersion"]
#: ``'<K>-fold'``: K blocks of consecutive runs (stories kept whole), K at least 2.
K_FOLD = Pattern("<K>-fold", r"(\d+)-fold", minimum=2)
#: Outer cross-validation schemes (``[encoding] outer_cv``).
OuterCV = Literal["leave-one-run-out", "leave-one-story-out"] | Annotated[str, K_FOLD]
