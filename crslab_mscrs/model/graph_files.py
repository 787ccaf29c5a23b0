"""Read the semantic-graph files written by the features stage and map them to model row spaces.

File format (contract with the features engineer): ``torch.load(path, weights_only=True)`` gives
``{"edge_index": int32/int64 Tensor[2, E], "edge_weight": FloatTensor[E], "num_nodes": int}`` in the KG
ENTITY id space. The co-occurrence graph spans all entities; the text and image kNN graphs only
connect item entities and are re-indexed here to item positions (column order of ``item_ids``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from crslab_mscrs.model.row_index import position_index

GRAPH_FILES = {
    "use_cooccurrence_graph": "cooccurrence_graph.pt",
    "use_text_graph": "text_knn_graph.pt",
    "use_image_graph": "image_knn_graph.pt",
}


def dataset_dir_of(opt: Mapping) -> Optional[Path]:
    """The built dataset folder a run trains on (``<data_root>/dataset/<dataset>/<tokenize>``),
    or ``None`` when ``opt`` names no dataset (tiny unit-test models)."""
    tokenize = opt.get("tokenize", "nltk")
    if not opt.get("dataset") or not isinstance(tokenize, str):
        return None
    from crslab_mscrs.paths import dataset_dir

    return dataset_dir(str(opt["dataset"]), tokenize)


def read_graph_file(path: Union[str, Path], config_key: str = "", dataset_dir: Optional[Path] = None,
                    item_ids=None) -> Dict[str, object]:
    """Load one graph file; a missing file is an error naming the file and the config key.

    With ``dataset_dir`` (and ``item_ids``) the graph's recorded inputs (train split, entity2id,
    item list) must match that dataset (:func:`crslab_mscrs.graphs.storage.check_dataset_inputs`).
    """
    path = Path(path)
    if not path.is_file():
        from crslab_mscrs.prerequisites import MissingPrerequisite, features_hint

        hint = f" (needed because `{config_key}: true`; or set it to false)" if config_key else ""
        raise MissingPrerequisite(f"Semantic graph file {path} not found{hint}: "
                                  f"{features_hint(path.parent.name)}.")
    try:
        from crslab_mscrs.graphs.storage import load_graph
    except ImportError:
        graph = torch.load(path, weights_only=True)
    else:
        graph = load_graph(path, dataset_dir=dataset_dir, item_ids=item_ids)
    if not isinstance(graph, dict):  # a storage helper may return an object with attributes
        graph = {key: getattr(graph, key) for key in ("edge_index", "edge_weight", "num_nodes")}
    missing = {"edge_index", "num_nodes"} - set(graph)
    if missing:
        raise ValueError(f"Graph file {path} lacks keys {sorted(missing)}.")
    edge_index = torch.as_tensor(graph["edge_index"], dtype=torch.long)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"Graph file {path}: edge_index must be [2, E], got {tuple(edge_index.shape)}.")
    weight = graph.get("edge_weight")
    weight = torch.ones(edge_index.size(1)) if weight is None else torch.as_tensor(weight, dtype=torch.float32)
    if weight.numel() != edge_index.size(1):
        raise ValueError(f"Graph file {path}: {weight.numel()} weights for {edge_index.size(1)} edges.")
    return {"edge_index": edge_index, "edge_weight": weight, "num_nodes": int(graph["num_nodes"]),
            "path": str(path)}


def check_entity_space(graph: Dict[str, object], n_entity: int) -> Dict[str, object]:
    """Validate that a graph's node ids are KG entity ids (< n_entity)."""
    edge_index = graph["edge_index"]
    if edge_index.numel() and int(edge_index.max()) >= n_entity:
        raise ValueError(f"Graph {graph.get('path', '')}: node id {int(edge_index.max())} >= n_entity "
                         f"{n_entity}; was it built for another dataset/KG?")
    return graph


def to_item_space(graph: Dict[str, object], item_ids: torch.Tensor) -> Dict[str, object]:
    """Re-index an item graph from entity ids to positions in ``item_ids``.

    Every edge endpoint must be an item entity (text/image graphs only connect items).
    """
    edge_index = graph["edge_index"]
    n_entity = max(int(item_ids.max()) + 1, int(edge_index.max()) + 1 if edge_index.numel() else 0)
    local = position_index(item_ids, n_entity)[edge_index]
    if (local < 0).any():
        bad = edge_index[local < 0][:5].tolist()
        raise ValueError(f"Graph {graph.get('path', '')} connects non-item entities (e.g. {bad}); "
                         "text/image graphs must only connect items of side_data['item_entity_ids'].")
    return {"edge_index": local, "edge_weight": graph["edge_weight"], "num_nodes": int(item_ids.numel()),
            "path": graph.get("path", "")}
