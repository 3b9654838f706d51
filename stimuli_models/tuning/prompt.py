"""``prompt``: soft prompt tuning (Lester et al., 2021).

``num_virtual_tokens`` trainable embeddings are put before the input; only they
(and the task head) train. They start from the embeddings of words sampled from
the vocabulary (``init = 'vocab'``), of the task's label words (``'labels'``;
vocabulary sampling for tasks without label words) or at random. Featurization
drops the soft positions before pooling. ``untrained = true`` is the control:
the same soft prompt at its initialisation, not trained; unless ``init = 'labels'``
it reads nothing of the task, so one control serves every task.
"""

from __future__ import annotations

from ..errors import check_choice
from ._common import TrainedMethod
from ._peft import n_virtual_default, wrap

INITS = ("vocab", "labels", "random")


class PromptTuning(TrainedMethod):
    """Lester-style prompt tuning."""

    name = "prompt"

    prompt_learning = True
    default_learning_rate = 3e-2
    settings_schema = {"num_virtual_tokens": (int, 20), "init": (str, "vocab"),
                       "untrained": (bool, False)}

    def __init__(self, **settings):
        super().__init__(**settings)
        check_choice("init", self.settings["init"], INITS)
        n_virtual_default(self.settings)

    def initialisation_uses_task(self) -> bool:
        """``init = 'labels'`` starts from the task's label words; the others from the seed."""
        return self.settings["init"] == "labels"

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Add the soft prompt (without a task, ``'labels'`` samples the vocabulary)."""
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        n = self.settings["num_virtual_tokens"]
        init = self.settings["init"]
        kwargs = {}
        if init == "labels" and task is not None and task.labels:
            words = " ".join(label.replace("-", " ").replace("_", " ") for label in task.labels)
            kwargs = {"prompt_tuning_init": PromptTuningInit.TEXT,
                      "prompt_tuning_init_text": words, "tokenizer_name_or_path": str(model_dir)}
        elif init in ("vocab", "labels"):
            kwargs = {"prompt_tuning_init": PromptTuningInit.SAMPLE_VOCAB}
        else:
            kwargs = {"prompt_tuning_init": PromptTuningInit.RANDOM}
        config = PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                    num_virtual_tokens=n, **kwargs)
        return wrap(backbone, config), n
