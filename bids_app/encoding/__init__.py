"""Voxel-wise encoding models: cross-validation, ridge fits, scores and statistics.

The estimators are imported on first use, so that importing this package stays cheap::

    from bids_app.encoding import EncodingRidgeCV, EncodingBandedRidgeCV, EncodingJointRidgeCV
"""

__all__ = ["EncodingBandedRidgeCV", "EncodingJointRidgeCV", "EncodingRidgeCV"]

_LAZY = {"EncodingRidgeCV": "estimators", "EncodingBandedRidgeCV": "banded_estimator",
         "EncodingJointRidgeCV": "joint_estimator"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
