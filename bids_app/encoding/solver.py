"""Ridge regression with per-voxel regularisation, all alphas from one decomposition.

The solver gives the same per-voxel alphas and held-out predictions as himalaya's
``RidgeCV`` (scores: negative mean squared error averaged over inner folds, ties
broken toward larger alphas) with less arithmetic:

* validation errors for every alpha come either from one product of a stacked
  (alphas × validation, training) *hat* matrix with Y, or, when the design has
  fewer features than training volumes, from Y projected once on the
  eigenvectors of the smaller Gram matrix (``X Xᵀ`` or ``Xᵀ X``), whichever needs
  fewer operations per voxel;
* when the design's rank r is below the number of validation volumes, the
  validation error of every alpha is a quadratic form in the r projected
  targets, ``‖C D z − y‖² = (Dz)ᵀ (CᵀC) (Dz) − 2 (Cᵀy)ᵀ (Dz) + ‖y‖²`` with
  ``D = diag(1/(s+alpha))``: 2·r² operations per voxel and alpha instead of
  2·r·n_val for forming the predictions; in the primal form (more training
  volumes than features) each fold's ``Xᵀ y`` is the outer training set's minus
  the validation rows' part, computed once per voxel batch and reused by the refit;
* hat matrices come, in float64, from one eigendecomposition of the smaller Gram
  matrix per fold (torch on CPU, where 13 Cholesky factorisations of a
  1,280 × 1,280 kernel took 1.28× as long, with the same hats to 1e-8) or from
  one Cholesky factorisation per alpha (the numpy backend, where they took 0.89×
  as long, and GPUs, where Cholesky is fast): ``benchmarks/hat_matrices.py``;
* the refit never forms weights per alpha: held-out predictions are the test
  rows' hat matrix of each voxel's alpha times Y (voxels grouped by alpha), or,
  when that costs more per voxel, Y projected once on the training eigenvectors
  with each column scaled by its own ``1 / (s + alpha)``.

Everything runs on himalaya's backend API (numpy, torch, torch_cuda) in float32,
one batch of voxels at a time, so memory grows with the batch and not with the
number of voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: bytes per float32 value
_F32 = 4
#: voxel batches are padded to a multiple of this many columns: BLAS products whose
#: rows are not 64-byte aligned run about a quarter slower (measured with MKL sgemm)
_ALIGN = 16


def _padded(be, Y):
    """``Y`` with zero columns appended up to a multiple of ``_ALIGN`` (or ``Y`` itself)."""
    extra = -Y.shape[1] % _ALIGN
    if not extra:
        return Y
    return be.concatenate([Y, be.zeros_like(Y, shape=(Y.shape[0], extra))], 1)


@dataclass
class _Basis:
    """Eigenbasis of one training set: ``pred(alpha) = C diag(1/(s+alpha)) R Y``."""

    s: object        # (r,) eigenvalues, float32, clipped at 0
    R: object        # (r, n_train) projection of training targets
    C: object        # (n_eval, r) evaluation rows in the basis
    hat: object = None  # (n_alphas * n_eval, n_train) stacked hat matrices, or None
    G: object = None    # (r, r) Cᵀ C when validation errors are scored as quadratic forms
    VT: object = None   # primal form: (p, p) eigenvectors of Xᵀ X, transposed
    XvT: object = None  # primal form: (p, n_val) validation rows, transposed


def _eigen_basis(be, X_train, X_eval, *, with_V: bool = False, with_R: bool = True):
    """Diagonalise the training design in float64 and express ``X_eval`` in the basis.

    Returns ``s, R, C`` (and ``V``, the eigenvectors of ``Xᵀ X`` in the primal form or
    None in the kernel form, when ``with_V``). ``with_R=False`` skips the primal
    form's ``R = (X V)ᵀ`` (returned as None) when it is not needed.
    """
    n, p = X_train.shape
    Xt = be.asarray(X_train, dtype="float64")
    Xe = be.asarray(X_eval, dtype="float64")
    V = None
    if n <= p:  # kernel form: K = X Xᵀ = U S Uᵀ
        s, U = _eigh(be, be.matmul(Xt, be.transpose(Xt)))
        R = be.transpose(U)
        C = be.matmul(be.matmul(Xe, be.transpose(Xt)), U)
    else:  # primal form: Xᵀ X = V S Vᵀ
        s, V = _eigh(be, be.matmul(be.transpose(Xt), Xt))
        R = be.transpose(be.matmul(Xt, V)) if with_R else None
        C = be.matmul(Xe, V)
    s = be.clip(s, 0, None)
    return (s, R, C, V) if with_V else (s, R, C)


def _cholesky_hats(be, X_train, X_eval, alphas):
    """Stacked hat matrices ``X_eval (Xᵀ X + alpha)⁻¹ Xᵀ`` by one Cholesky per alpha.

    Parameters
    ----------
    be : module
        Active himalaya backend.
    X_train : array of shape (n_train, n_features)
    X_eval : array of shape (n_eval, n_features)
    alphas : ndarray of shape (n_alphas,)

    Returns
    -------
    backend array of shape (n_alphas * n_eval, n_train) or None
        float32 hat matrices, alpha-major; None when the backend has no Cholesky
        here or a regularised Gram matrix is not numerically positive definite
        (the caller then uses the eigendecomposition).
    """
    name = getattr(be, "name", "")
    n, p = X_train.shape
    n_eval = X_eval.shape[0]
    if name.startswith("torch") and name != "torch_mps":
        import torch

        Xt = be.asarray(X_train, dtype="float64")
        Xe = be.asarray(X_eval, dtype="float64")
        gram = Xt @ Xt.T if n <= p else Xt.T @ Xt
        rhs = Xt @ Xe.T if n <= p else Xe.T  # (m, n_eval)
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        hats = torch.empty((len(alphas), n_eval, n), dtype=torch.float32, device=gram.device)
        for i, alpha in enumerate(np.asarray(alphas, dtype=np.float64)):
            factor, info = torch.linalg.cholesky_ex(gram + float(alpha) * eye)
            if int(info) != 0:
                return None
            solved = torch.cholesky_solve(rhs, factor)  # (m, n_eval)
            hats[i] = (solved.T if n <= p else solved.T @ Xt.T).to(torch.float32)
        return hats.reshape(len(alphas) * n_eval, n)
    if name == "numpy":
        from scipy.linalg import LinAlgError, cho_factor, cho_solve

        Xt = np.asarray(X_train, dtype=np.float64)
        Xe = np.asarray(X_eval, dtype=np.float64)
        gram = Xt @ Xt.T if n <= p else Xt.T @ Xt
        rhs = Xt @ Xe.T if n <= p else Xe.T
        hats = np.empty((len(alphas), n_eval, n), dtype=np.float32)
        diagonal = np.diag_indices_from(gram)
        for i, alpha in enumerate(np.asarray(alphas, dtype=np.float64)):
            regularised = gram.copy()
            regularised[diagonal] += alpha
            try:
                factor = cho_factor(regularised, lower=True, overwrite_a=True,
                                    check_finite=False)
            except LinAlgError:
                return None
            solved = cho_solve(factor, rhs, check_finite=False)
            hats[i] = solved.T if n <= p else solved.T @ Xt.T
        return hats.reshape(len(alphas) * n_eval, n)
    return None


def _eigh(be, gram):
    """Symmetric eigendecomposition (himalaya's torch backends expose it as ``eigh``)."""
    if hasattr(be, "eigh"):
        return be.eigh(gram)
    import torch  # pragma: no cover - every himalaya backend has eigh

    return torch.linalg.eigh(gram)


def flops_per_voxel(n_train: int, n_val: int, n_features: int, n_alphas: int) -> dict:
    """Multiply-adds ×2 per voxel of the two ways to score one inner fold.

    Returns
    -------
    dict
        ``{'hat': ..., 'project': ..., 'gram': ...}``: the stacked hat matrices times
        Y; Y projected on the eigenvectors and each alpha's predictions formed; Y
        projected and each alpha's error taken as a quadratic form in the basis. In
        the primal form also ``'gram_shared'``: the quadratic forms with the fold's
        ``Xᵀ Y`` taken from that of all training volumes (computed once per voxel
        batch, 2·p·n, not counted here) minus the validation rows' part.
    """
    r = min(n_train, n_features)
    cost = {"hat": 2 * n_alphas * n_val * n_train,
            "project": 2 * r * n_train + 2 * n_alphas * n_val * r,
            "gram": 2 * r * n_train + 2 * n_val * r + 2 * n_alphas * r * r}
    if n_train > n_features:  # Xᵀ Y of the fold from the outer set's, minus the validation rows'
        p = n_features
        cost["gram_shared"] = 2 * p * n_val + 4 * p * p + 2 * n_alphas * p * p
    return cost


def refit_flops_per_voxel(n_train: int, n_test: int, n_features: int) -> dict:
    """Multiply-adds ×2 per voxel of the two ways to predict held-out volumes.

    Returns
    -------
    dict
        ``{'hat': ...}`` (the voxel's own alpha's test hat matrix times Y) and
        ``{'project': ...}`` (Y projected on the eigenvectors, scaled, mapped back).
    """
    r = min(n_train, n_features)
    return {"hat": 2 * n_test * n_train, "project": 2 * r * n_train + 2 * n_test * r}


class RidgePlan:
    """Decompositions of one outer training set, reusable for every voxel batch.

    Parameters
    ----------
    X : array of shape (n_train, n_features)
        Training design (columns centred by the caller when needed).
    X_test : array of shape (n_test, n_features)
        Design of the held-out volumes (no rows when only :meth:`weights` is needed).
    alphas : array of shape (n_alphas,)
        Candidate regularisation strengths.
    cv : list of (train, validation) index arrays
        Inner folds over the rows of ``X``.
    backend : module
        Active himalaya backend (``himalaya.backend.get_backend()``).
    hat_budget_bytes : float
        Largest stacked hat matrix kept per fold; beyond it the projecting
        strategy is used.
    """

    def __init__(self, X, X_test, alphas, cv, backend, *, hat_budget_bytes: float = 2e9):
        be = self.backend = backend
        self.alphas_np = np.asarray(alphas, dtype=np.float32)
        self.alphas = be.asarray(self.alphas_np, dtype="float32")
        self.cv = [(np.asarray(a), np.asarray(b)) for a, b in cv]
        self.n_flops = 0.0  # per voxel, dominant products
        self.folds = []
        self.strategies = []  # 'hat', 'project', 'gram' or 'gram_shared' per inner fold
        n_alphas = len(self.alphas_np)
        for train, val in self.cv:
            cost = flops_per_voxel(len(train), len(val), X.shape[1], n_alphas)
            hat_bytes = n_alphas * len(val) * len(train) * _F32
            hat = None
            if cost["hat"] <= min(cost.values()) and hat_bytes <= hat_budget_bytes:
                hat = self._hats(X[train], X[val])
                self.n_flops += cost["hat"]
                self.folds.append(_Basis(None, None, None, hat))
                self.strategies.append("hat")
                continue
            choice = dict(cost)
            if "gram_shared" in choice:  # its share of the Xᵀ Y of all training volumes
                choice["gram_shared"] += 2 * X.shape[0] * X.shape[1] / len(self.cv)
            strategy = min((k for k in ("project", "gram", "gram_shared") if k in choice),
                           key=choice.get)
            s, R, C, V = _eigen_basis(be, X[train], X[val], with_V=True,
                                      with_R=strategy != "gram_shared")
            self.n_flops += cost[strategy]
            self.strategies.append(strategy)
            fold = _Basis(be.asarray(s, dtype="float32"), None, None)
            if strategy == "project":
                fold.R, fold.C = be.asarray(R, dtype="float32"), be.asarray(C, dtype="float32")
            else:
                fold.G = be.asarray(be.matmul(be.transpose(C), C), dtype="float32")
            if strategy == "gram":
                fold.R, fold.C = be.asarray(R, dtype="float32"), be.asarray(C, dtype="float32")
            elif strategy == "gram_shared":
                fold.VT = be.asarray(be.transpose(V), dtype="float32")
                fold.XvT = be.asarray(np.ascontiguousarray(X[val].T), dtype="float32")
            self.folds.append(fold)
        self._XT = None  # Xᵀ of all training volumes, for the shared projections
        if "gram_shared" in self.strategies:
            self._XT = be.asarray(np.ascontiguousarray(np.asarray(X, dtype=np.float32).T))
            self.n_flops += 2 * X.shape[0] * X.shape[1]
        self._xty = None  # (Y, Xᵀ Y) of the last batch scored
        self._X, self._X_test = X, X_test
        self._refit = None
        self.refit_hat = None
        cost = refit_flops_per_voxel(X.shape[0], X_test.shape[0], X.shape[1])
        if self._XT is not None:  # Vᵀ (Xᵀ Y) from the shared product instead of (X V)ᵀ Y
            cost["project"] = 2 * X.shape[1] ** 2 + 2 * X_test.shape[0] * X.shape[1]
        hat_bytes = n_alphas * X_test.shape[0] * X.shape[0] * _F32
        if X_test.shape[0] and cost["hat"] < cost["project"] and hat_bytes <= hat_budget_bytes:
            hat = self._hats(X, X_test, fallback=False)
            if hat is not None:
                self.refit_hat = hat.reshape(n_alphas, X_test.shape[0], X.shape[0])
                self.n_flops += cost["hat"]
        if self.refit_hat is None and X_test.shape[0]:
            self.n_flops += cost["project"]
            _ = self.refit  # decompose now, not in the first batch

    def _hats(self, X_train, X_eval, *, fallback: bool = True):
        """Stacked float32 hat matrices of every alpha (alpha-major).

        torch on CPU: from one eigendecomposition. Other backends: one Cholesky per
        alpha, and when a regularised Gram matrix is not positive definite the
        eigendecomposition (``fallback``) or None.
        """
        if getattr(self.backend, "name", "") == "torch":
            return self._eigen_hats(X_train, X_eval)
        hat = _cholesky_hats(self.backend, X_train, X_eval, self.alphas_np)
        if hat is None and fallback:
            hat = self._eigen_hats(X_train, X_eval)
        return hat

    def _eigen_hats(self, X_train, X_eval):
        """Stacked hat matrices ``C diag(1/(s+alpha)) R`` from one eigendecomposition.

        Formed one alpha at a time in float64, so that the float64 buffer is one
        alpha's hat. An alpha of 0 on a singular Gram matrix gives non-finite rows:
        their scores are never chosen.
        """
        be = self.backend
        s, R, C = _eigen_basis(be, X_train, X_eval)
        n_eval, n_train = X_eval.shape[0], X_train.shape[0]
        hat = be.zeros_like(be.asarray(C, dtype="float32"),
                            shape=(len(self.alphas_np) * n_eval, n_train))
        for i, alpha in enumerate(self.alphas_np.astype(np.float64)):
            hat[i * n_eval:(i + 1) * n_eval] = be.asarray(
                be.matmul(C / (s[None, :] + float(alpha)), R), dtype="float32")
        return hat

    @property
    def refit(self) -> _Basis:
        """Eigenbasis of all training volumes (computed on first use)."""
        if self._refit is None:
            be = self.backend
            s, R, C, V = _eigen_basis(be, self._X, self._X_test, with_V=True)
            self._refit = _Basis(be.asarray(s, dtype="float32"),
                                 be.asarray(R, dtype="float32"),
                                 be.asarray(C, dtype="float32"))
            if V is not None:
                self._refit.VT = be.asarray(be.transpose(V), dtype="float32")
        return self._refit

    def cv_scores(self, Y):
        """Inner-fold scores of every alpha for one batch of voxels.

        Parameters
        ----------
        Y : backend array of shape (n_train, n_batch)
            Training targets (float32, on the backend's device).

        Returns
        -------
        array of shape (n_alphas, n_batch)
            Negative mean squared validation error, averaged over inner folds (float64).
        """
        be = self.backend
        n_alphas = len(self.alphas_np)
        n_batch = Y.shape[1]
        unpadded, Y = Y, _padded(be, Y)
        total = None
        XtY = None
        if self._XT is not None:
            XtY = be.matmul(self._XT, Y)
            self._xty = (unpadded, XtY)
        for (train, val), fold in zip(self.cv, self.folds, strict=True):
            Yt, Yv = Y[train], Y[val]
            if fold.G is not None:
                if fold.VT is not None:  # Xᵀ Y of the inner training rows, in the basis
                    Pv = be.matmul(fold.XvT, Yv)
                    z, q = be.matmul(fold.VT, XtY - Pv), be.matmul(fold.VT, Pv)
                else:
                    z, q = be.matmul(fold.R, Yt), be.matmul(be.transpose(fold.C), Yv)
                score = -self._gram_errors(fold, z, q, Yv) / len(val)
                score[be.isnan(score)] = -1e30
                total = score if total is None else total + score
                continue
            if fold.hat is not None:
                pred = be.matmul(fold.hat, Yt).reshape(n_alphas, len(val), Y.shape[1])
            else:
                B = be.matmul(fold.R, Yt)
                weighted = B[None] / (fold.s[None, :, None] + self.alphas[:, None, None])
                pred = be.matmul(fold.C[None], weighted)
            pred -= Yv[None]
            pred *= pred  # in place: no second (alphas × validation × voxels) buffer
            err = be.sum(pred, 1)
            score = -be.asarray(err, dtype="float64") / len(val)
            # an alpha too small for a singular Gram matrix gives no prediction: never chosen
            score[be.isnan(score)] = -1e30
            total = score if total is None else total + score
            del pred
        return total[:, :n_batch] / len(self.cv)

    def _gram_errors(self, fold: _Basis, z, q, Yv):
        """Validation sums of squared errors of every alpha, as quadratic forms (float64).

        ``‖C D z − y‖² = uᵀ G u − 2 qᵀ u + ‖y‖²`` with ``z`` the training targets
        in the basis, ``u = D z``, ``G = CᵀC`` and ``q = Cᵀ y``; one alpha at a time,
        so that the buffers stay at a few (r, n_batch) arrays. The terms are float32
        products summed in float64: the error's relative precision is about
        ``2·eps32 / (1 − R²)`` (below 1e-6 for R² under 0.8), against
        ``2·eps32 / sqrt(1 − R²)`` when the predictions are formed.
        """
        be = self.backend
        yy = be.asarray(be.sum(Yv * Yv, 0), dtype="float64")
        rows = []
        for alpha in self.alphas:
            u = z / (fold.s + alpha)[:, None]
            quad = be.sum(u * be.matmul(fold.G, u), 0)
            lin = be.sum(q * u, 0)
            rows.append(be.asarray(quad, dtype="float64") - 2 * be.asarray(lin, dtype="float64")
                        + yy)
        return be.stack(rows)

    def select(self, scores):
        """Index of the best alpha per voxel (ties go to the larger alpha, as himalaya)."""
        be = self.backend
        slope = be.asarray(np.log(self.alphas_np.astype(np.float64)) * 1e-10, dtype="float64")
        slope = be.asarray_like(slope, scores)
        return be.argmax(scores + slope[:, None], 0)

    def predict(self, Y, alpha_index):
        """Held-out predictions of the model refitted on all training volumes.

        Parameters
        ----------
        Y : backend array of shape (n_train, n_batch)
        alpha_index : backend array of shape (n_batch,)
            Index into ``alphas`` per voxel.

        Returns
        -------
        backend array of shape (n_test, n_batch)
        """
        be = self.backend
        if self.refit_hat is not None:  # column groups: copies, aligned by BLAS itself
            chosen = np.asarray(be.to_numpy(alpha_index)).astype(np.int64)
            out = be.zeros_like(Y, shape=(self.refit_hat.shape[1], Y.shape[1]))
            for a in np.unique(chosen):
                cols = be.asarray_like(np.flatnonzero(chosen == a), alpha_index)
                out[:, cols] = be.matmul(self.refit_hat[int(a)], Y[:, cols])
            return out
        fit = self.refit
        n_batch = Y.shape[1]
        if self._xty is not None and self._xty[0] is Y and fit.VT is not None:
            B = be.matmul(fit.VT, self._xty[1])  # Vᵀ Xᵀ Y from the batch just scored
        else:
            B = be.matmul(fit.R, _padded(be, Y))
        self._xty = None
        alpha = self.alphas[alpha_index]
        B[:, :n_batch] /= fit.s[:, None] + alpha[None, :]
        return be.matmul(fit.C, B)[:, :n_batch]

    def weights(self, X, Y, alpha_index):
        """Primal weights of the refitted model (for inspection; not needed for scores).

        Returns
        -------
        backend array of shape (n_features, n_batch)
        """
        be = self.backend
        Xb = be.asarray(X, dtype="float32")
        B = be.matmul(self.refit.R, Y)
        B /= self.refit.s[:, None] + self.alphas[alpha_index][None, :]
        n, p = X.shape
        if n <= p:  # dual coefficients U (S+a)^-1 Uᵀ Y, then Xᵀ
            return be.matmul(be.transpose(Xb), be.matmul(be.transpose(self.refit.R), B))
        # primal: V (S+a)^-1 Vᵀ Xᵀ Y with R = (X V)ᵀ, V kept from the eigendecomposition
        # (recovering it as Xᵀ Rᵀ / s would divide by the zero eigenvalues of a rank-deficient X)
        return be.matmul(be.transpose(self.refit.VT), B)


def batch_size_for(n_voxels: int, n_train: int, n_test: int, n_val_max: int, n_alphas: int,
                   mem_gb: float | None, *, reserve_gb: float = 0.5) -> int:
    """Voxels solved at once so that the working buffers fit in ``mem_gb``.

    Per voxel the solver holds the training and test targets, the stacked
    validation predictions of one fold (alphas × validation volumes) and the
    projected targets.

    Returns
    -------
    int
        Between 64 and ``n_voxels``.
    """
    if not mem_gb:
        mem_gb = 4.0
    per_voxel = _F32 * (2 * n_train + 2 * n_test + 2 * n_alphas * n_val_max + 2 * n_train)
    usable = max(mem_gb - reserve_gb, 0.25) * 1024 ** 3
    return int(min(max(64, usable // per_voxel), max(n_voxels, 1)))
