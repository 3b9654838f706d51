"""The group report's Methods text, collected from the steps that ran.

Each group step describes itself beside its computation, from the parameters it
actually used (:meth:`bids_app.group.one_sample.OneSampleResult.methods`,
:func:`bids_app.group.variant_maps.variant_methods`,
:func:`bids_app.group.contrast_maps.comparison_methods`,
:meth:`bids_app.group.ceiling_maps.Ceiling.methods`,
:meth:`bids_app.group.regions.RegionSet.methods` ...).
:func:`bids_app.group.run.run_group` adds those sentences to a
:class:`GroupMethods` in the order the steps run; a step that did not run adds
nothing. Steps that run once per variant add their sentence with the variant as
its scope: a sentence every variant shares is written once, and one that only
some variants share is prefixed with their labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GroupMethods", "join_labels"]


def join_labels(labels: list[str]) -> str:
    """``'a'``, ``'a and b'``, ``'a, b and c'``.

    Parameters
    ----------
    labels : list of str
        Labels in the order to write them.

    Returns
    -------
    str
    """
    labels = [str(label) for label in labels]
    if len(labels) < 2:
        return "".join(labels)
    return f"{', '.join(labels[:-1])} and {labels[-1]}"


@dataclass
class GroupMethods:
    """Methods sentences of the group steps that ran, in execution order.

    Attributes
    ----------
    entries : list of (str, str or None)
        ``(sentence, scope)`` as added: ``scope`` is the variant a per-variant step
        described, None for a step of the whole group stage.

    Examples
    --------
    >>> methods = GroupMethods()
    >>> methods.add("Maps were checked.")
    >>> methods.add("r was tested.", "frozen")
    >>> methods.add("r was tested.", "lora")
    >>> methods.add("The unique R² was averaged.", "lora")
    >>> methods.add("")  # a step that did not run says nothing
    >>> methods.sentences()
    ['Maps were checked.', 'r was tested.', 'For variant lora: The unique R² was averaged.']
    """

    entries: list = field(default_factory=list)

    def add(self, sentence: str, scope: str | None = None) -> None:
        """Record a step's sentence(s); an empty sentence (a step with nothing to say) is ignored.

        Parameters
        ----------
        sentence : str
            One or more full sentences.
        scope : str, optional
            The variant the step ran for (None: the whole group stage).
        """
        if sentence:
            self.entries.append((sentence.strip(), scope))

    def sentences(self) -> list[str]:
        """The sentences, each once, in the order first added.

        A sentence added for some variants but not all that have per-variant
        sentences starts with ``'For <labels>: '``.

        Returns
        -------
        list of str
        """
        every = list(dict.fromkeys(scope for _, scope in self.entries if scope is not None))
        scopes: dict[str, list] = {}
        for sentence, scope in self.entries:
            scopes.setdefault(sentence, [])
            if scope is not None and scope not in scopes[sentence]:
                scopes[sentence].append(scope)
        out = []
        for sentence, labels in scopes.items():
            if labels and set(labels) != set(every):
                noun = "variant" if len(labels) == 1 else "variants"
                sentence = f"For {noun} {join_labels(labels)}: {sentence}"
            out.append(sentence)
        return out

    def text(self) -> str:
        """The sentences joined by spaces ('' when no step ran)."""
        return " ".join(self.sentences())
