"""Semantic graphs for MSCRS (docs/model.md#semantic-graphs), all in the KG entity id space.

:mod:`.cooccurrence` (train-only entity/item co-occurrence), :mod:`.knn` (blockwise top-k
cosine item graphs), :mod:`.storage` (``{edge_index, edge_weight, num_nodes}`` files with a
manifest; ``load_graph(path, expected_inputs=...)`` refuses stale files),
:mod:`.train_conversations` (train-split readers).
"""
from crslab_mscrs.graphs.cooccurrence import Graph, build_cooccurrence_graph
from crslab_mscrs.graphs.knn import build_knn_graph
from crslab_mscrs.graphs.storage import StaleArtifactError, load_features, load_graph, save_features, save_graph

__all__ = ["Graph", "build_cooccurrence_graph", "build_knn_graph", "StaleArtifactError", "load_features",
           "load_graph", "save_features", "save_graph"]
