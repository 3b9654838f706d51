"""The report's Methods text, generated from the workflow's steps.

Every brainenc interface describes itself in a sentence built from its inputs
(:meth:`bids_app.interfaces.base.BrainencInterface.methods`); this module
assembles those sentences in execution order, so the text changes exactly when
a step or one of its parameters does.
"""

from __future__ import annotations

import networkx as nx
from nipype.pipeline import engine as pe


def step_sentences(nodes) -> list[str]:
    """The methods sentences of ``nodes``, in their order, each once.

    Parameters
    ----------
    nodes : iterable of Node
        nipype nodes (nodes whose interface has no ``methods`` are skipped).

    Returns
    -------
    list of str
        Non-empty sentences without repeats.
    """
    sentences = []
    for node in nodes:
        describe = getattr(node.interface, "methods", None)
        sentence = describe() if callable(describe) else ""
        if sentence and sentence not in sentences:
            sentences.append(sentence)
    return sentences


def execution_order(workflow: pe.Workflow) -> list:
    """Nodes of a workflow (not of its sub-workflows) in an order nipype may run them.

    Parameters
    ----------
    workflow : Workflow
        A built workflow.

    Returns
    -------
    list of Node
        Topologically sorted; ties broken by the order the nodes were added, so
        the order is stable and follows how the workflow was written.
    """
    graph = workflow._graph  # nipype keeps the connections in this networkx graph
    rank = {node: f"{index:06d}" for index, node in enumerate(graph.nodes())}
    return list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))


def methods_text(workflow: pe.Workflow, upstream=()) -> str:
    """Methods text of a workflow: the sentences of its steps in execution order.

    Parameters
    ----------
    workflow : Workflow
        A participant's workflow.
    upstream : sequence of Node
        Steps run before it outside it (tuning and featurization of the
        extractors it reads), in order.

    Returns
    -------
    str
        The sentences joined by spaces.
    """
    return " ".join(step_sentences([*upstream, *execution_order(workflow)]))
