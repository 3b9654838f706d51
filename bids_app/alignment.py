"""Align word-level features to the volumes of a run.

Three models of how a word's features reach the BOLD signal:

``hrf``
    Each word is an impulse (or a boxcar over its duration) scaled by its
    features, convolved with a haemodynamic response function evaluated in
    continuous time, so the result is exact at each volume's acquisition time
    (no temporal grid). Models: Glover or SPM canonical HRF, optionally with time
    and dispersion derivatives (which multiply the number of features).
``fir``
    Features of the words heard during each volume are summed, then stacked at
    the given delays (in volumes), as in finite impulse response models.
``lanczos``
    Features are resampled to the volume times with a 3-lobe Lanczos filter
    cut off at the volumes' Nyquist frequency ``1 / (2 TR)`` (zeros at every
    multiple of the TR, support +-3 TR, as the Huth lab does), then stacked at
    the given delays.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

_HRF_PARAMS = {
    # delay, undershoot, dispersion, undershoot dispersion, ratio (nilearn's conventions).
    # Glover (1999) weighs the undershoot by 0.35 relative to peak-normalised gammas; of
    # unit-area gamma densities that is a ratio of 0.48 (as nilearn >= 0.11 uses).
    "glover": (6.0, 12.0, 0.9, 0.9, 0.48),
    "spm": (6.0, 16.0, 1.0, 1.0, 1.0 / 6.0),
}
#: HRF models accepted by :func:`hrf_basis` (the names nilearn uses).
HRF_MODELS = tuple(f"{base}{extra}" for base in _HRF_PARAMS
                   for extra in ("", " + derivative", " + derivative + dispersion"))


def _gamma_difference(t: np.ndarray, delay, undershoot, disp, u_disp, ratio, *, cdf=False):
    dist = stats.gamma.cdf if cdf else stats.gamma.pdf
    t = np.asarray(t, dtype=float)
    peak = dist(t, delay / disp, scale=disp)
    under = dist(t, undershoot / u_disp, scale=u_disp)
    return (peak - ratio * under) / (1.0 - ratio)


def hrf(t: np.ndarray, model: str = "glover", *, integral: bool = False) -> np.ndarray:
    """Canonical HRF (unit area), or its running integral, at times ``t`` (s).

    Parameters
    ----------
    t : ndarray
        Seconds after the stimulus (0 before it).
    model : {'glover', 'spm'}
        Canonical shape.
    integral : bool
        Return the integral of the HRF from 0 to ``t`` (for boxcar stimuli).

    Returns
    -------
    ndarray
        Same shape as ``t``.
    """
    if model not in _HRF_PARAMS:
        _refuse("hrf_model", model, _HRF_PARAMS)
    return _gamma_difference(t, *_HRF_PARAMS[model], cdf=integral)


def _refuse(name: str, value, choices) -> None:
    shown = "{" + ", ".join(repr(c) for c in sorted(choices)) + "}"
    raise ValueError(f"'{name}' must be one of {shown}; got {value!r}.")


def hrf_basis(model: str):
    """Functions of the HRF basis set named ``model``.

    ``'glover + derivative'`` adds the time derivative, ``'... + derivative +
    dispersion'`` also the dispersion derivative, both finite differences as
    nilearn computes them: ``(h(t) - h(t - 0.1)) / 0.1`` and
    ``(h(t; d) - h(t; d + 0.01)) / 0.01`` for the peak dispersion ``d``.

    Parameters
    ----------
    model : str
        One of :data:`HRF_MODELS` (spaces around ``+`` are optional).

    Returns
    -------
    list of callable
        Each maps (t, integral) to the basis function (or its running integral).

    Raises
    ------
    ValueError
        For any other name.
    """
    parts = [p.strip() for p in str(model).split("+")]
    if " + ".join(parts) not in HRF_MODELS:
        _refuse("hrf_model", model, HRF_MODELS)
    base = parts[0]
    delay, under, disp, u_disp, ratio = _HRF_PARAMS[base]

    def canonical(t, integral=False):
        return _gamma_difference(t, delay, under, disp, u_disp, ratio, cdf=integral)

    functions = [canonical]
    if "derivative" in parts:
        dt = 0.1

        def time_derivative(t, integral=False):
            return (canonical(t, integral) - canonical(np.asarray(t) - dt, integral)) / dt

        functions.append(time_derivative)
    if "dispersion" in parts:
        dd = 0.01

        def dispersion_derivative(t, integral=False):
            other = _gamma_difference(t, delay, under, disp + dd, u_disp, ratio, cdf=integral)
            return (canonical(t, integral) - other) / dd

        functions.append(dispersion_derivative)
    return functions


def frame_times(n_volumes: int, tr: float, *, reference: float = 0.0,
                first_volume: int = 0) -> np.ndarray:
    """Acquisition time of each volume, in seconds from the start of the run.

    Parameters
    ----------
    n_volumes : int
        Volumes kept.
    tr : float
        Repetition time.
    reference : float
        Seconds from the start of a volume to its reference slice (``StartTime``, or
        ``slice_time_ref * tr``).
    first_volume : int
        Index of the first kept volume (after dropped dummy scans).

    Returns
    -------
    ndarray of shape (n_volumes,)
    """
    return (np.arange(n_volumes) + first_volume) * tr + reference


def hrf_design(onsets: np.ndarray, durations: np.ndarray, features: np.ndarray,
               times: np.ndarray, *, model: str = "glover",
               word_duration: str = "impulse", chunk: int = 4096) -> np.ndarray:
    """Convolve word features with an HRF and sample them at ``times``.

    ``X[i] = sum_w h(times[i] - onsets[w]) * features[w]`` for impulses, and the
    exact convolution with a unit boxcar over ``[onset, onset + duration]``
    otherwise.

    Parameters
    ----------
    onsets, durations : ndarray of shape (n_words,)
        Word timing in seconds (same clock as ``times``).
    features : ndarray of shape (n_words, n_features)
        Word features.
    times : ndarray of shape (n_volumes,)
        Acquisition times (see :func:`frame_times`).
    model : str
        HRF basis (``'glover'``, ``'spm'``, ``'glover + derivative'`` ...).
    word_duration : {'impulse', 'boxcar'}
        How long each word drives the response.
    chunk : int
        Words processed at once (bounds memory).

    Returns
    -------
    ndarray of shape (n_volumes, n_features * n_basis)
        float32 design matrix, one block of features per basis function.
    """
    onsets = np.asarray(onsets, dtype=float)
    durations = np.asarray(durations, dtype=float)
    features = np.asarray(features, dtype=np.float64)
    blocks = []
    for basis in hrf_basis(model):
        block = np.zeros((len(times), features.shape[1]))
        for c0 in range(0, len(onsets), chunk):
            lag = times[:, None] - onsets[None, c0:c0 + chunk]
            if word_duration == "boxcar":
                dur = np.maximum(durations[None, c0:c0 + chunk], 1e-3)
                kernel = (basis(np.maximum(lag, 0), integral=True)
                          - basis(np.maximum(lag - dur, 0), integral=True)) / dur
            else:
                kernel = np.where(lag > 0, basis(np.maximum(lag, 0)), 0.0)
            block += kernel @ features[c0:c0 + chunk]
        blocks.append(block)
    return np.hstack(blocks).astype(np.float32)


def bin_features(onsets: np.ndarray, features: np.ndarray, times: np.ndarray,
                 tr: float) -> np.ndarray:
    """Sum the features of the words whose onset falls in each volume's window.

    Volume ``i`` collects words with ``times[i] - tr <= onset < times[i]``.

    Returns
    -------
    ndarray of shape (n_volumes, n_features)
    """
    out = np.zeros((len(times), features.shape[1]), dtype=np.float64)
    index = np.searchsorted(times, onsets, side="right")
    inside = (index < len(times)) & (onsets >= times[np.minimum(index, len(times) - 1)] - tr)
    np.add.at(out, index[inside], np.asarray(features, dtype=np.float64)[inside])
    return out


def lanczos_kernel(lag: np.ndarray, *, cutoff: float, window: int = 3) -> np.ndarray:
    """Lanczos low-pass kernel at time lags ``lag`` (seconds).

    ``h(t) = 2 fc sinc(2 fc t) sinc(2 fc t / a)`` for ``|2 fc t| < a`` and 0
    elsewhere, with ``sinc(x) = sin(pi x) / (pi x)``, cut-off ``fc`` and ``a``
    lobes. It integrates to 1 (unit gain at 0 Hz) and halves at ``fc``. At the
    Nyquist frequency of a TR (``fc = 1 / (2 TR)``) its zeros fall on every
    multiple of the TR and its support is ``+-a`` TR.

    Parameters
    ----------
    lag : ndarray
        Time from the word to the sample, in seconds (any shape).
    cutoff : float
        Cut-off frequency ``fc`` in Hz.
    window : int
        Number of lobes ``a`` on each side.

    Returns
    -------
    ndarray
        Same shape as ``lag``.
    """
    x = 2.0 * cutoff * np.asarray(lag, dtype=float)
    kernel = 2.0 * cutoff * np.sinc(x) * np.sinc(x / window)
    kernel[np.abs(x) >= window] = 0.0
    return kernel


def lanczos_resample(onsets: np.ndarray, features: np.ndarray, times: np.ndarray, *,
                     cutoff: float, window: int = 3) -> np.ndarray:
    """Resample irregularly timed word features to ``times`` with a Lanczos kernel.

    ``out[i] = sum_w h(times[i] - onsets[w]) * features[w]`` with ``h`` from
    :func:`lanczos_kernel`.

    Parameters
    ----------
    onsets : ndarray of shape (n_words,)
    features : ndarray of shape (n_words, n_features)
    times : ndarray of shape (n_volumes,)
    cutoff : float
        Cut-off frequency in Hz (the Nyquist frequency of the volumes, ``1 / (2 TR)``).
    window : int
        Lobes of the Lanczos kernel on each side (support ``window / (2 cutoff)`` s).

    Returns
    -------
    ndarray of shape (n_volumes, n_features)
    """
    lag = times[:, None] - np.asarray(onsets, dtype=float)[None, :]
    kernel = lanczos_kernel(lag, cutoff=cutoff, window=window)
    return kernel @ np.asarray(features, dtype=np.float64)


def delay_stack(design: np.ndarray, delays) -> np.ndarray:
    """Stack copies of ``design`` shifted by ``delays`` volumes (zeros shifted in).

    Returns
    -------
    ndarray of shape (n_volumes, n_features * len(delays))
    """
    n = design.shape[0]
    out = []
    for d in delays:
        shifted = np.zeros_like(design)
        if d < n:
            shifted[d:] = design[: n - d] if d > 0 else design
        out.append(shifted)
    return np.hstack(out)


def zscore_columns(design: np.ndarray) -> np.ndarray:
    """Z-score columns (constant columns become 0), in float32."""
    design = np.asarray(design, dtype=np.float64)
    mean = design.mean(axis=0)
    std = design.std(axis=0)
    out = np.zeros_like(design)
    ok = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    out[:, ok] = (design[:, ok] - mean[ok]) / std[ok]
    return out.astype(np.float32)


def align_run(onsets: np.ndarray, durations: np.ndarray, features: np.ndarray,
              times: np.ndarray, tr: float, *, method: str = "hrf",
              hrf_model: str = "glover", delays=(1, 2, 3, 4),
              word_duration: str = "impulse", zscore: bool = True) -> np.ndarray:
    """Design matrix of one run from its word features.

    Parameters
    ----------
    onsets, durations : ndarray of shape (n_words,)
        Word timing (seconds, run clock).
    features : ndarray of shape (n_words, n_features)
        Features of those words.
    times : ndarray of shape (n_volumes,)
        Acquisition times of the kept volumes.
    tr : float
        Repetition time.
    method : {'hrf', 'fir', 'lanczos'}
        Alignment model (see module docstring).
    hrf_model, delays, word_duration
        Options of the models.
    zscore : bool
        Z-score columns within the run.

    Returns
    -------
    ndarray of shape (n_volumes, n_columns)
        float32 design matrix.
    """
    if method == "hrf":
        design = hrf_design(onsets, durations, features, times, model=hrf_model,
                            word_duration=word_duration)
    elif method == "fir":
        design = delay_stack(bin_features(onsets, features, times, tr), delays)
    elif method == "lanczos":
        resampled = lanczos_resample(onsets, features, times, cutoff=1.0 / (2.0 * tr))
        design = delay_stack(resampled, delays)
    else:
        raise ValueError(f"'method' must be one of ('fir', 'hrf', 'lanczos'); got {method!r}.")
    return zscore_columns(design) if zscore else np.asarray(design, dtype=np.float32)


def edge_mask(n_volumes: int, start: int = 0, end: int = 0) -> np.ndarray:
    """Volumes of a run kept after trimming its edges.

    The first volumes of a run hold the response to words heard before the
    scanner started (or none at all, the HRF still rising) and the last ones
    are often silence; leaving them out of the fit and the scores is common in
    story-listening studies. Designs are aligned on the whole run first, so the
    kept volumes still see the words before them.

    Parameters
    ----------
    n_volumes : int
        Volumes of the run.
    start, end : int
        Volumes left out at the start and at the end.

    Returns
    -------
    ndarray of shape (n_volumes,)
        Boolean mask of the kept volumes.

    Raises
    ------
    ValueError
        When nothing would be left.
    """
    start, end = int(start), int(end)
    if start < 0 or end < 0:
        raise ValueError(f"'trim_edges' must be non-negative; got [{start}, {end}]")
    if start + end >= n_volumes:
        raise ValueError(f"trimming {start} + {end} volumes leaves nothing of a run of "
                         f"{n_volumes} volumes; lower 'encoding.trim_edges'")
    mask = np.zeros(n_volumes, dtype=bool)
    mask[start:n_volumes - end] = True
    return mask
