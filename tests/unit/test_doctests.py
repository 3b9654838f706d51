"""The Python API's examples run, and every public name has a numpydoc docstring with one."""

from __future__ import annotations

import doctest
import importlib

import pytest

#: Modules whose docstring examples are run here (the public Python API).
API_MODULES = ["bids_app.encoding.estimators", "bids_app.encoding.banded_estimator",
               "bids_app.encoding.joint_estimator",
               "stimuli_models.word_features", "bids_app.api"]
#: Packages whose ``__all__`` is the public API.
API_PACKAGES = ["bids_app", "bids_app.encoding", "stimuli_models"]


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


@pytest.mark.parametrize("name", API_MODULES)
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                             verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("package", API_PACKAGES)
def test_public_names_have_numpydoc_docstrings_with_examples(package):
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        doc = getattr(module, name).__doc__ or ""
        assert "Examples\n    --------" in doc and ">>> " in doc, f"{package}.{name}"
        assert "Parameters\n    ----------" in doc or "Attributes\n    ----------" in doc, name
