"""The interface every tuning method implements.

A method is a :class:`TuningMethod` subclass with a ``name``; the table of methods by
name is :mod:`stimuli_models.tuning.registry` (adding a method is one new module in
this package and one line there). A method takes a pretrained model
directory and (except ``frozen``) an NLU task, and produces a *variant directory*
from which :meth:`TuningMethod.load_for_features` rebuilds the model used for
featurization.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SettingsError


@dataclass
class TuningResult:
    """What a tuning run produced (also written as ``tuning.json``)."""

    method: str
    trainable_params: int
    total_params: int
    dev_metric: float | None = None
    dev_metric_name: str | None = None
    steps: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def trainable_share(self) -> float:
        """Fraction of the model's parameters that were trained."""
        return self.trainable_params / self.total_params if self.total_params else 0.0


class TuningMethod:
    """Base class of tuning methods.

    Subclasses define :attr:`settings_schema` (name -> (type, default)), and
    implement :meth:`tune` and :meth:`load_for_features`.
    """

    name = "base"
    needs_task = True
    settings_schema: dict[str, tuple[type | tuple, object]] = {}

    def __init__(self, **settings):
        unknown = sorted(set(settings) - set(self.settings_schema))
        if unknown:
            allowed = ", ".join(sorted(self.settings_schema)) or "none"
            raise SettingsError(
                f"unknown setting(s) {unknown} for tuning method '{self.name}'; allowed: {allowed}."
            )
        self.settings = {}
        for key, (kind, default) in self.settings_schema.items():
            value = settings.get(key, default)
            if value is not None and not isinstance(value, kind) or isinstance(value, bool) and (
                kind is int or kind is float
            ):
                raise SettingsError(
                    f"setting '{key}' of tuning method '{self.name}' must be of type "
                    f"{getattr(kind, '__name__', kind)}; got {value!r}."
                )
            self.settings[key] = value

    @property
    def depends_on_task(self) -> bool:
        """Whether what :meth:`tune` saves depends on the task (its data, labels or head).

        True for every method that trains; False for ``frozen`` and for an untrained
        control whose starting point reads nothing of the task (see
        :meth:`~stimuli_models.tuning._common.TrainedMethod.initialisation_uses_task`).
        """
        return self.needs_task

    def tune(self, model_dir: Path, task, out_dir: Path, *, seed: int, device: str,
             training=None, allow_pickle: bool = False, trust_remote_code: bool = False,
             log=None) -> TuningResult:
        """Tune the model on ``task`` and save the variant into ``out_dir``.

        ``task`` is a :class:`~stimuli_models.tasks.TaskData`; ``training`` is a
        :class:`~stimuli_models.training.TrainingSettings` or its dictionary.
        """
        raise NotImplementedError

    def load_for_features(self, model_dir: Path, variant_dir: Path | None, *, device: str,
                          dtype: str, allow_pickle: bool = False,
                          trust_remote_code: bool = False):
        """Return a :class:`stimuli_models.story_features.LoadedModel` for featurization."""
        raise NotImplementedError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create a folder (and its parents) and return it as a Path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
