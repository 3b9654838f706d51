"""Group statistics: one-sample tests across subjects by t and by sign flipping.

A subject's held-out r map is one observation. Under the null hypothesis that a
voxel's population mean (of Fisher-z r, or of a paired difference) is zero and
the subject values are symmetric around it, flipping the sign of any subject's
value leaves the distribution unchanged: the sign-flip permutation test (Nichols
& Holmes 2002, *Hum Brain Mapp* 15:1-25) needs no normality. With ``n``
subjects there are ``2**n`` distinct flips; all are used when they are fewer
than the permutations asked for, so small groups get exact p values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..encoding.voxel_stats import fdr_bh

#: Group maps of p, q and FWE p: NaN where no test was made (outside every participant's
#: mask, or where the values do not vary across participants).
GROUP_P_MAPS = ("p", "q", "pperm", "qperm", "pfwe")
#: Sidecar statement of that convention.
GROUP_UNANALYSED_NOTE = ("n/a (NaN) where no test was made: outside the participants' common "
                         "mask, or where the participants' values do not vary")


#: What the group tests, by the participant maps available.
GROUP_TEST_STATISTICS = {
    "heldout_z": ("One-sample t across participants of their held-out scores (stat-z: each "
                  "participant's r centred and scaled by that participant's own null; "
                  "H1: above chance)."),
    "fisher_z_r": ("One-sample t across participants of Fisher-z r (H1: r > 0); participants "
                   "had no held-out test (heldout_permutations = 0), so p values assume "
                   "fold-averaged r is symmetric about 0 under the null."),
}


#: Methods text of each test statistic: what the values are, and the subject of the test
#: sentence (:meth:`OneSampleResult.methods`).
GROUP_TEST_METHODS = {
    "heldout_z": ("Each participant's held-out r was scored against that participant's own "
                  "null (its held-out test), voxel by voxel, as a score with mean 0 and "
                  "variance 1 under the null (stat-z).", "These scores"),
    "fisher_z_r": ("Not every participant had a held-out score (stat-z: participant level run "
                   "with heldout_permutations = 0), so Fisher-z r was tested; its p values "
                   "assume that fold-averaged r is symmetric about 0 under the null.",
                   "Fisher-z r values"),
}


def group_test_values(scores: np.ndarray | None, z_r: np.ndarray,
                      valid: np.ndarray) -> tuple[np.ndarray, dict]:
    """Choose the per-participant values the group tests.

    A participant's fold-averaged held-out r is not symmetric about 0 under the null
    (its folds share training runs) and its spread depends on the voxel's
    autocorrelation, so the sign-flip and t tests of r are not exact. The
    participants' held-out scores (``stat-z``) are centred and scaled by each
    participant's own null, voxel by voxel, and are tested instead when every
    participant has them.

    Parameters
    ----------
    scores : ndarray of shape (n_subjects, n_elements) or None
        Participants' ``stat-z`` maps (all elements).
    z_r : ndarray of shape (n_subjects, n_valid)
        Fisher-z r over the analysed elements.
    valid : ndarray of shape (n_elements,)
        Analysed elements.

    Returns
    -------
    values : ndarray of shape (n_subjects, n_valid)
        Values to test.
    fields : dict
        ``GroupTestStatistic`` (``'heldout_z'`` or ``'fisher_z_r'``) and
        ``GroupTestDescription`` for the sidecars.
    """
    if scores is not None:
        name, values = "heldout_z", np.asarray(scores, dtype=np.float64)[:, valid]
    else:
        name, values = "fisher_z_r", z_r
    return values, {"GroupTestStatistic": name,
                    "GroupTestDescription": GROUP_TEST_STATISTICS[name]}


def fisher_z(r: np.ndarray) -> np.ndarray:
    """``arctanh`` of correlations, clipped away from +-1 (float64)."""
    return np.arctanh(np.clip(np.asarray(r, dtype=np.float64), -0.999999, 0.999999))


def t_statistic(x: np.ndarray) -> np.ndarray:
    """One-sample t of the column means.

    Parameters
    ----------
    x : ndarray of shape (n_subjects, n_elements)

    Returns
    -------
    ndarray of shape (n_elements,)
        ``mean / (sd / sqrt(n))``; NaN where the standard deviation is 0.
    """
    n = x.shape[0]
    sd = x.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = x.mean(axis=0) / (sd / np.sqrt(n))
    t[~np.isfinite(t)] = np.nan
    return t


def _flips(n_subjects: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Sign patterns (first row: all +1, the observed data)."""
    if 2 ** n_subjects <= n_permutations + 1:
        codes = np.arange(2 ** n_subjects)
        bits = (codes[:, None] >> np.arange(n_subjects)[None, :]) & 1
        return (1 - 2 * bits).astype(np.float64)
    signs = rng.choice([-1.0, 1.0], size=(n_permutations, n_subjects))
    return np.vstack([np.ones((1, n_subjects)), signs])


@dataclass
class OneSampleResult:
    """Voxel-wise one-sample test across subjects (arrays of shape (n_elements,))."""

    mean: np.ndarray
    t: np.ndarray
    p: np.ndarray            # parametric, from Student's t
    q: np.ndarray            # FDR (Benjamini-Hochberg) of p
    p_perm: np.ndarray | None = None   # sign-flip permutation p
    q_perm: np.ndarray | None = None   # FDR of p_perm
    p_fwe: np.ndarray | None = None    # family-wise, from the max-t distribution
    n_permutations: int = 0             # sign patterns used, the observed one included
    n_subjects: int = 0
    two_sided: bool = False
    exhaustive: bool = False            # every one of the 2**n_subjects patterns was used
    seed: int = 0
    n_requested: int = 0                # random permutations asked for

    def methods(self, values: str) -> str:
        """Methods sentences of this test, from the parameters it ran with.

        Parameters
        ----------
        values : str
            What was tested (e.g. ``"Fisher-z r"``), the subject of the sentence.

        Returns
        -------
        str
            The t test (sidedness, degrees of freedom), the sign-flip test (how
            many patterns, exhaustive or random with their seed, max-t FWE) when
            it ran, and the FDR correction.
        """
        n = self.n_subjects
        side = "two-sided" if self.two_sided else "one-sided"
        text = (f"{values} were tested across the {n} participants with a {side} one-sample "
                f"t test (Student's t, {n - 1} degrees of freedom)")
        if self.p_perm is None:
            return text + (". No sign-flip permutation test was run (n_permutations = 0). "
                           "p values were corrected with the Benjamini-Hochberg false "
                           "discovery rate (FDR).")
        if self.exhaustive:
            flips = (f"all {self.n_permutations} (2^{n}) sign patterns of the {n} "
                     "participants, an exhaustive test since they are no more than the "
                     f"{self.n_requested} permutations asked for")
        else:
            flips = (f"the observed signs and {self.n_permutations - 1} random sign patterns "
                     f"(seed {self.seed}); not exhaustive, since 2^{n} patterns exist")
        statistic = "|t|" if self.two_sided else "t"
        return (text + f" and with a sign-flip permutation test of {statistic} over {flips}; "
                f"family-wise p values come from the distribution of the maximum {statistic} "
                "over elements. The t-test and permutation p values were each corrected with "
                "the Benjamini-Hochberg false discovery rate (FDR).")


def one_sample_test(x: np.ndarray, *, two_sided: bool = False, n_permutations: int = 1000,
                    seed: int = 0, batch: int = 64) -> OneSampleResult:
    """Test that the mean over subjects is above zero (or differs from it).

    Parameters
    ----------
    x : ndarray of shape (n_subjects, n_elements)
        One value per subject and element (already Fisher-z transformed when
        they are correlations).
    two_sided : bool
        Test ``mean != 0`` (paired comparisons) instead of ``mean > 0``.
    n_permutations : int
        Random sign flips (0: parametric test only). All ``2**n_subjects`` flips
        are used when there are no more than that.
    seed : int
        Seed of the random flips.
    batch : int
        Flips evaluated at once (bounds memory to ``batch * n_elements`` floats).

    Returns
    -------
    OneSampleResult
    """
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    t = t_statistic(x)
    if two_sided:
        p = 2 * stats.t.sf(np.abs(t), df=n - 1)
    else:
        p = stats.t.sf(t, df=n - 1)
    result = OneSampleResult(mean=x.mean(axis=0), t=t, p=p, q=fdr_bh(p), n_subjects=n,
                             two_sided=two_sided, seed=seed, n_requested=max(n_permutations, 0))
    if n_permutations <= 0 or n < 2:
        return result
    flips = _flips(n, n_permutations, np.random.default_rng(seed))
    result.exhaustive = len(flips) == 2 ** n and 2 ** n <= n_permutations + 1
    observed = np.abs(t) if two_sided else t
    observed = np.where(np.isfinite(observed), observed, np.inf)
    # t of a flip is recomputed from sums, which can differ from ``t`` by rounding when the
    # variance is small against the mean: compare with a relative tolerance.
    floor = observed - 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(observed),
                                                              observed, 0.0)))
    # Sign flips leave the sum of squares unchanged: t follows from the flipped means.
    sum_sq = (x ** 2).sum(axis=0)
    exceed = np.zeros(x.shape[1])
    max_t = np.empty(len(flips))
    for start in range(0, len(flips), batch):
        block = flips[start:start + batch]
        means = block @ x / n
        var = np.maximum((sum_sq - n * means ** 2) / (n - 1), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_perm = means / np.sqrt(var / n)
        t_perm = np.nan_to_num(np.abs(t_perm) if two_sided else t_perm, nan=-np.inf,
                               posinf=np.inf, neginf=-np.inf)
        exceed += (t_perm >= floor[None, :]).sum(axis=0)
        max_t[start:start + len(block)] = t_perm.max(axis=1) if t_perm.size else -np.inf
    n_flips = len(flips)
    p_perm = np.maximum(exceed, 1) / n_flips  # the identity flip always counts
    p_perm[~np.isfinite(t)] = np.nan
    ranked = np.sort(max_t)
    p_fwe = np.maximum(n_flips - np.searchsorted(ranked, floor, side="left"), 1) / n_flips
    p_fwe[~np.isfinite(t)] = np.nan
    result.p_perm, result.q_perm, result.p_fwe = p_perm, fdr_bh(p_perm), p_fwe
    result.n_permutations = n_flips
    return result
