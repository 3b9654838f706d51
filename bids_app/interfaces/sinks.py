"""The ways derivatives reach OUTPUT_DIR: :class:`DerivativesSink` and :class:`StoreSink`.

Compute and rendering steps write only into their node folders; a sink copies
a rendered tree (``<node folder>/derivatives``, see
:mod:`bids_app.interfaces.derivatives`) to the same relative paths in
OUTPUT_DIR. Each file is written atomically (a temporary beside it, then a
rename, with the modes of :func:`stimuli_models.cache.follow_umask`), and a file
OUTPUT_DIR already holds with the same bytes is left untouched: a rerun rewrites
nothing and an interrupted run leaves no partial file. A sink's inputs are the
rendered files themselves (hashed by content), so it reruns exactly when one of
them changed and is otherwise reused like any finished step.

A :class:`StoreSink` publishes what a tuning or featurization step staged into
OUTPUT_DIR's shared stores (:mod:`bids_app.io.store`): under the entry's lock, the
first publication of a key wins, and the step's claims are released.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, Directory, File, TraitedSpec, traits

from ..errors import ProcessingError
from ..featurization import publish_features
from ..io.derivatives import copy_file
from ..tuning import publish_tuned
from .base import BrainencInterface, staged_files


def sink_tree(staged: str | Path, output_dir: str | Path,
              files: list[str] | None = None) -> tuple[list[str], int]:
    """Copy files of ``staged`` to the same relative paths under ``output_dir``.

    Parameters
    ----------
    staged : path
        A rendered tree, shaped like OUTPUT_DIR.
    output_dir : path
        OUTPUT_DIR.
    files : list of str, optional
        The files to copy, all inside ``staged`` (default: every file of it).

    Returns
    -------
    out_files : list of str
        Final paths, in the order of ``files``.
    n_written : int
        How many were written (the others already held the same bytes).

    Raises
    ------
    ProcessingError
        When a file is not inside ``staged``.
    """
    staged, output_dir = Path(staged), Path(output_dir)
    out_files, n_written = [], 0
    for source in map(Path, staged_files(staged) if files is None else files):
        if staged not in source.parents:
            raise ProcessingError(f"'{source}' is not inside the rendered folder '{staged}'; "
                                  "a sink publishes only what its step rendered.")
        final = output_dir / source.relative_to(staged)
        n_written += copy_file(source, final)
        out_files.append(str(final))
    return out_files, n_written


class _SinkInput(BaseInterfaceInputSpec):
    staged_dir = Directory(exists=True, mandatory=True,
                           desc="rendered derivatives, shaped like OUTPUT_DIR")
    in_files = traits.List(File(exists=True), mandatory=True,
                           desc="the rendered files to publish (hashed by content)")
    output_dir = Directory(mandatory=True, desc="OUTPUT_DIR")


class _SinkOutput(TraitedSpec):
    out_files = traits.List(traits.Str, desc="the files in OUTPUT_DIR")
    n_written = traits.Int(desc="files written (the others were already identical)")


class DerivativesSink(BrainencInterface):
    """Publish a rendered tree in OUTPUT_DIR: :func:`sink_tree`."""

    input_spec = _SinkInput
    output_spec = _SinkOutput

    def _compute(self, runtime) -> None:
        out_files, n_written = sink_tree(self.inputs.staged_dir, self.inputs.output_dir,
                                         list(self.inputs.in_files))
        self._results.update(out_files=out_files, n_written=n_written)


class _StoreSinkInput(BaseInterfaceInputSpec):
    store = traits.Enum("models", "features", mandatory=True, desc="which store")
    staged_dir = Directory(exists=True, mandatory=True,
                           desc="the step's staging folder, shaped like OUTPUT_DIR")
    in_files = traits.List(File(exists=True), mandatory=True,
                           desc="the staged files (hashed by content; may be none)")
    # hashed as names: an entry's file appears when published, its name is what is asked for
    entries = traits.List(traits.Str, mandatory=True, hash_files=False,
                          desc="the store paths the step provides, published or reused")
    output_dir = Directory(mandatory=True, desc="OUTPUT_DIR")


class _StoreSinkOutput(TraitedSpec):
    out_files = traits.List(File(exists=True), desc="the store paths (all present)")
    out_file = File(exists=True, desc="the first of them")
    n_written = traits.Int(desc="files written (entries already stored are kept)")


class StoreSink(BrainencInterface):
    """Publish the store entries a step staged (``publish_tuned``, ``publish_features``)."""

    input_spec = _StoreSinkInput
    output_spec = _StoreSinkOutput

    def _compute(self, runtime) -> None:
        entries = list(self.inputs.entries)
        if self.inputs.store == "models":
            n_written = publish_tuned(entries[0], self.inputs.staged_dir, self.inputs.output_dir)
        else:
            n_written = publish_features([f for f in self.inputs.in_files if f.endswith(".npy")],
                                         self.inputs.staged_dir, self.inputs.output_dir)
        missing = [path for path in entries if not Path(path).exists()]
        if missing:
            raise ProcessingError(f"'{missing[0]}' is neither in the store nor staged; rerun "
                                  "the same command to build it again.")
        self._results.update(out_files=entries, out_file=entries[0], n_written=n_written)
