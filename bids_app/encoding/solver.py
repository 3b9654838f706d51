"""Ridge regression with per-voxel regularisation, all alphas from one decomposition.

The solver gives the same per-voxel alphas and held-out predictions as himalaya's
``RidgeCV`` (scores: negative mean squared error averaged over inner folds, ties
broken toward larger alphas) with less arithmetic:

* each inner fold is diagonalised once, by an eigendecomposition of the smaller of
  the two Gram matrices (``X Xᵀ`` or ``Xᵀ X``, in float64 for accuracy);
* validation errors for every alpha come either from one product of a stacked
  (alphas × validation, training) *hat* matrix with Y, or, when the design has
  fewer features than training volumes, from Y projected once on the
  eigenvectors, whichever needs fewer operations per voxel;
* the refit never forms weights per alpha: Y is projected once on the training
  eigenvectors and each column is scaled by its own ``1 / (s + alpha)`` before
  the single product giving held-out predictions.

Everything runs on himalaya's backend API (numpy, torch, torch_cuda) in float32,
one batch of voxels at a time, so memory grows with the batch and not with the
number of voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: bytes per float32 value
_F32 = 4


@dataclass
class _Basis:
    """Eigenbasis of one training set: ``pred(alpha) = C diag(1/(s+alpha)) R Y``."""

    s: object        # (r,) eigenvalues, float32, clipped at 0
    R: object        # (r, n_train) projection of training targets
    C: object        # (n_eval, r) evaluation rows in the basis
    hat: object = None  # (n_alphas * n_eval, n_train) stacked hat matrices, or None


def _eigen_basis(be, X_train, X_eval):
    """Diagonalise the training design in float64 and express ``X_eval`` in the basis."""
    n, p = X_train.shape
    Xt = be.asarray(X_train, dtype="float64")
    Xe = be.asarray(X_eval, dtype="float64")
    if n <= p:  # kernel form: K = X Xᵀ = U S Uᵀ
        s, U = _eigh(be, be.matmul(Xt, be.transpose(Xt)))
        R = be.transpose(U)
        C = be.matmul(be.matmul(Xe, be.transpose(Xt)), U)
    else:  # primal form: Xᵀ X = V S Vᵀ
        s, V = _eigh(be, be.matmul(be.transpose(Xt), Xt))
        R = be.transpose(be.matmul(Xt, V))
        C = be.matmul(Xe, V)
    s = be.clip(s, 0, None)
    return s, R, C


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
        ``{'hat': ..., 'project': ...}``.
    """
    r = min(n_train, n_features)
    return {"hat": 2 * n_alphas * n_val * n_train,
            "project": 2 * r * n_train + 2 * n_alphas * n_val * r}


class RidgePlan:
    """Decompositions of one outer training set, reusable for every voxel batch.

    Parameters
    ----------
    X : array of shape (n_train, n_features)
        Training design (columns centred by the caller when needed).
    X_test : array of shape (n_test, n_features)
        Design of the held-out volumes.
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
        n_alphas = len(self.alphas_np)
        for train, val in self.cv:
            s, R, C = _eigen_basis(be, X[train], X[val])
            cost = flops_per_voxel(len(train), len(val), X.shape[1], n_alphas)
            hat = None
            hat_bytes = n_alphas * len(val) * len(train) * _F32
            if cost["hat"] <= cost["project"] and hat_bytes <= hat_budget_bytes:
                alphas64 = be.asarray(self.alphas_np, dtype="float64")
                scaled = C[None] / (s[None, None, :] + alphas64[:, None, None])
                hat = be.matmul(scaled, R[None]).reshape(n_alphas * len(val), len(train))
                hat = be.asarray(hat, dtype="float32")
                self.n_flops += cost["hat"]
            else:
                self.n_flops += cost["project"]
            self.folds.append(_Basis(be.asarray(s, dtype="float32"),
                                     be.asarray(R, dtype="float32"),
                                     be.asarray(C, dtype="float32"), hat))
        s, R, C = _eigen_basis(be, X, X_test)
        self.refit = _Basis(be.asarray(s, dtype="float32"), be.asarray(R, dtype="float32"),
                            be.asarray(C, dtype="float32"))
        r = R.shape[0]
        self.n_flops += 2 * r * X.shape[0] + 2 * X_test.shape[0] * r

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
        total = None
        for (train, val), fold in zip(self.cv, self.folds, strict=True):
            Yt, Yv = Y[train], Y[val]
            if fold.hat is not None:
                pred = be.matmul(fold.hat, Yt).reshape(n_alphas, len(val), Y.shape[1])
            else:
                B = be.matmul(fold.R, Yt)
                weighted = B[None] / (fold.s[None, :, None] + self.alphas[:, None, None])
                pred = be.matmul(fold.C[None], weighted)
            pred -= Yv[None]
            err = be.sum(pred * pred, 1)
            score = -be.asarray(err, dtype="float64") / len(val)
            total = score if total is None else total + score
            del pred
        return total / len(self.cv)

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
        fit = self.refit
        B = be.matmul(fit.R, Y)
        alpha = self.alphas[alpha_index]
        B /= fit.s[:, None] + alpha[None, :]
        return be.matmul(fit.C, B)

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
        # primal: V (S+a)^-1 Vᵀ Xᵀ Y; R = (X V)ᵀ so V = Xᵀ Rᵀ / s
        s = self.refit.s
        V = be.matmul(be.transpose(Xb), be.transpose(self.refit.R)) / be.clip(s, 1e-12, None)[None]
        return be.matmul(V, B)


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
