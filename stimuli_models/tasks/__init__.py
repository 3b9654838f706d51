"""NLU tasks: data readers, encoding into model inputs, heads and dev metrics."""

from .base import TASK_TYPES, TaskData, check_task_options, load_task  # noqa: F401
from .metrics import PRIMARY_METRIC, entity_f1, squad_scores  # noqa: F401
