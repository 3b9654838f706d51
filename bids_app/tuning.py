"""Wire :mod:`stimuli_models.tuning` into the BIDS-App (``OUTPUT_DIR/models/<label>``).

Tuning is subject-independent: it runs once per extractor and dataset, and its
result is reused by every participant job (also by jobs in other processes).
"""

from __future__ import annotations

import json
from pathlib import Path

from stimuli_models.cache import atomic_write_json, stable_hash

from .errors import from_library_error
from .variants import Extractor


def tune_extractor(extractor_json: str, output_dir: str, *, seed: int, device: str,
                   training: dict | None = None) -> str:
    """Tune (or reuse) the model of one extractor.

    Parameters
    ----------
    extractor_json : str
        Serialised :class:`~bids_app.variants.Extractor`.
    output_dir : str
        The BIDS-App's OUTPUT_DIR.
    seed : int
        Random seed.
    device : str
        Torch device.
    training : dict, optional
        Training-loop settings (``[training]`` of the spec).

    Returns
    -------
    str
        Path of ``models/<label>/tuning.json``, which records the method, the
        trainable share, the dev metric and the fingerprint of the features' model.
    """
    from stimuli_models.errors import StimuliModelsError
    from stimuli_models.models import hash_model_dir
    from stimuli_models.tuning import get_method

    extractor = Extractor.from_json(extractor_json)
    model_dir = Path(extractor.model_dir)
    target = Path(output_dir) / "models" / extractor.label / "tuning.json"
    try:
        method = get_method(extractor.method, **extractor.settings)
        model_hash = hash_model_dir(model_dir)
        key = stable_hash({"model": model_hash, "method": extractor.method,
                           "settings": method.settings, "seed": seed})
        if target.exists():
            previous = json.loads(target.read_text(encoding="utf-8"))
            if previous.get("key") == key:
                return str(target)
        result = method.tune(model_dir, None, target.parent, seed=seed, device=device,
                             training=training)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    record = {
        "key": key,
        "label": extractor.label,
        "model": extractor.model.source,
        "model_dir": str(model_dir),
        "model_sha256": model_hash,
        "method": extractor.method,
        "settings": method.settings,
        "task": None,
        "seed": seed,
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
        "trainable_share": result.trainable_share,
        "dev_metric": result.dev_metric,
        "dev_metric_name": result.dev_metric_name,
        "steps": result.steps,
        "variant_dir": None,
        "fingerprint": model_hash,
    }
    atomic_write_json(target, record)
    return str(target)
