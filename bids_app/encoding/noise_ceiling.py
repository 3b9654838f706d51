"""Inter-subject noise ceiling for datasets without repeated stimuli.

When every participant heard the same stories, the part of a voxel's response
that is driven by the stimulus is shared across participants. The
leave-one-subject-out correlation — each participant's BOLD against the mean of
the others, in a common space — estimates how much of the signal any stimulus
model can predict (Nastase et al., 2019, "Measuring shared responses across
subjects using intersubject correlation"). Encoding scores divided by it are
*ceiling-normalised* scores. The group stage accumulates it run by run from the
participants' cleaned BOLD in OUTPUT_DIR (:class:`LosoCorrelation`).

The raw leave-one-subject-out correlation is *not* an upper bound for a model of
one participant: the mean of the others still holds their noise, so it reads
below the correlation of a participant with the shared response itself (a
perfect model of the shared response scores 1.73 of it with 3 participants, 1.25
with 8, 1.10 with 20). :func:`shared_response_ceiling` corrects it: with
participants equally reliable (pairwise correlation ``rho``), the LOSO
correlation is ``L = sqrt(rho) sqrt(SB_{n-1}(rho))`` with the Spearman–Brown
reliability ``SB_m(rho) = m rho / (1 + (m - 1) rho)`` of the mean of ``m``
participants; solving for ``rho`` gives the ceiling ``sqrt(rho)``, the expected
correlation of one participant's BOLD with the noise-free shared response, which a
perfect model reaches whatever the group size.
"""

from __future__ import annotations

import numpy as np

from .scoring import pearson_r


def _check(data) -> list:
    data = list(data)
    if len(data) < 3:
        raise ValueError("an inter-subject ceiling needs at least 3 participants; "
                         f"got {len(data)}")
    shapes = {tuple(d.shape) for d in data}
    if len(shapes) != 1:
        raise ValueError("every participant needs the same volumes and voxels (a common "
                         f"space and the same stories); got shapes {sorted(shapes)}")
    return data


def loso_correlation(data, *, batch: int = 8192) -> np.ndarray:
    """Correlation of each participant with the mean of the others, per voxel.

    Parameters
    ----------
    data : sequence of ndarray of shape (n_volumes, n_voxels)
        BOLD of each participant for the same stimulus time line (memory-mapped
        arrays are read one voxel batch at a time).
    batch : int
        Voxels processed at once.

    Returns
    -------
    ndarray of shape (n_subjects, n_voxels)
        float32 Pearson r (0 where a series is constant).
    """
    data = _check(data)
    n_sub, v = len(data), data[0].shape[1]
    out = np.zeros((n_sub, v), np.float32)
    for start in range(0, v, batch):
        cols = slice(start, min(start + batch, v))
        block = np.stack([np.asarray(d[:, cols], dtype=np.float32) for d in data])
        total = block.sum(axis=0)
        for s in range(n_sub):
            others = (total - block[s]) / (n_sub - 1)
            out[s, cols] = pearson_r(block[s], others)
    return out


class LosoCorrelation:
    """Leave-one-subject-out correlation accumulated one run at a time.

    Gives the values of :func:`loso_correlation` on the runs concatenated in time
    while keeping only running sums (float64, three per participant and voxel and
    two per voxel), so a whole dataset never has to be in memory: only the sum of
    one run over participants and one participant's run.

    Parameters
    ----------
    n_subjects : int
        Participants (at least 3).
    n_voxels : int
        Voxels of every run.
    batch : int
        Voxels multiplied in float64 at once.

    Attributes
    ----------
    n_volumes_ : int
        Volumes added so far.
    """

    def __init__(self, n_subjects: int, n_voxels: int, *, batch: int = 8192):
        _check([np.zeros((1, n_voxels))] * int(n_subjects))
        self.n_subjects, self.n_voxels, self.batch = int(n_subjects), int(n_voxels), int(batch)
        self.n_volumes_ = 0
        shape = (self.n_subjects, self.n_voxels)
        self._sx, self._sxx, self._sxt = (np.zeros(shape) for _ in range(3))
        self._st, self._stt = np.zeros(self.n_voxels), np.zeros(self.n_voxels)

    def add_run(self, load) -> LosoCorrelation:
        """Add one run of every participant.

        Parameters
        ----------
        load : callable
            ``load(s)`` returns participant ``s``'s run, ndarray of shape
            (n_volumes, n_voxels), the same volumes of the stimulus for everyone.
            It is called twice per participant.

        Returns
        -------
        self
        """
        total = None
        for s in range(self.n_subjects):
            x = np.asarray(load(s), dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != self.n_voxels or (
                    total is not None and x.shape != total.shape):
                raise ValueError("every participant needs the same volumes and voxels; got "
                                 f"shape {x.shape} for participant {s}")
            total = x if total is None else total + x
        self._st += total.sum(axis=0)
        self._stt += np.einsum("ij,ij->j", total, total)
        for s in range(self.n_subjects):
            x = load(s)
            for start in range(0, self.n_voxels, self.batch):
                cols = slice(start, start + self.batch)
                xb = np.asarray(x[:, cols], dtype=np.float64)
                self._sx[s, cols] += xb.sum(axis=0)
                self._sxx[s, cols] += np.einsum("ij,ij->j", xb, xb)
                self._sxt[s, cols] += np.einsum("ij,ij->j", xb, total[:, cols])
        self.n_volumes_ += len(total)
        return self

    def result(self) -> np.ndarray:
        """Correlation of each participant with the mean of the others.

        Returns
        -------
        ndarray of shape (n_subjects, n_voxels)
            float32 Pearson r over every volume added (0 where a series is constant).
        """
        n, k = float(self.n_volumes_), self.n_subjects - 1
        if n < 2:
            raise ValueError("the ceiling needs at least 2 volumes")
        so = (self._st - self._sx) / k
        soo = (self._stt - 2 * self._sxt + self._sxx) / k ** 2
        sxo = (self._sxt - self._sxx) / k
        cov = sxo - self._sx * so / n
        vx = self._sxx - self._sx ** 2 / n
        vo = soo - so ** 2 / n
        ok = (vx > 1e-12 * np.maximum(self._sxx, 1e-300)) & (
            vo > 1e-12 * np.maximum(soo, 1e-300))
        out = np.zeros_like(cov)
        out[ok] = cov[ok] / np.sqrt(vx[ok] * vo[ok])
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def noise_ceiling(data, *, batch: int = 8192) -> np.ndarray:
    """Mean leave-one-subject-out correlation (the group's noise ceiling in r).

    Returns
    -------
    ndarray of shape (n_voxels,)
        float32; values at or below 0 mean no reliable shared signal.
    """
    return loso_correlation(data, batch=batch).mean(axis=0)


def shared_response_ceiling(loso: np.ndarray, n_subjects: int) -> np.ndarray:
    """Correlation of one participant with the shared response, from the LOSO correlation.

    Parameters
    ----------
    loso : ndarray of shape (..., n_voxels)
        Leave-one-subject-out correlations (:func:`loso_correlation`).
    n_subjects : int
        Participants in the group (at least 3).

    Returns
    -------
    ndarray, same shape as ``loso``
        ``sqrt(rho)`` with ``rho`` the pairwise inter-participant correlation that
        explains ``|loso|`` under equal reliability, with the sign of ``loso``
        (negative values are noise), float32.
    """
    if n_subjects < 3:
        raise ValueError(f"an inter-subject ceiling needs at least 3 participants; got "
                         f"{n_subjects}")
    loso = np.clip(np.asarray(loso, dtype=np.float64), -1.0, 1.0)
    L2 = loso ** 2
    m = n_subjects - 1  # others in the mean
    # L^2 (1 + (m - 1) rho) = m rho^2  ->  m rho^2 - L^2 (m - 1) rho - L^2 = 0
    rho = (L2 * (m - 1) + np.sqrt(L2 ** 2 * (m - 1) ** 2 + 4 * m * L2)) / (2 * m)
    # signed, so that voxels without a shared response average to 0 rather than to a
    # positive bias
    return (np.sign(loso) * np.sqrt(np.clip(rho, 0.0, 1.0))).astype(np.float32)


def ceiling_normalised(r: np.ndarray, ceiling: np.ndarray, *,
                       min_ceiling: float = 0.1) -> np.ndarray:
    """Divide encoding r by the noise ceiling where the ceiling is reliable.

    Parameters
    ----------
    r : ndarray of shape (..., n_voxels)
        Held-out correlations (one row per participant, or group means).
    ceiling : ndarray of shape (n_voxels,) or same shape as ``r``
        From :func:`noise_ceiling` or :func:`loso_correlation`.
    min_ceiling : float
        Voxels whose ceiling is below this are NaN (dividing by noise is meaningless).

    Returns
    -------
    ndarray
        float32, shape of ``r``.
    """
    r = np.asarray(r, dtype=np.float32)
    ceiling = np.asarray(ceiling, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ceiling >= min_ceiling, r / ceiling, np.nan)
    return out.astype(np.float32)
