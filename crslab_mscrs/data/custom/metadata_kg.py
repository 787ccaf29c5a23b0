"""A KG made from the catalogue's metadata, for user datasets that bring none.

Every metadata value becomes a typed entity and every item gets one edge per value:

    relation     entity name       from the item's
    genre        genre:<value>     genres
    director     person:<value>    director
    star         person:<value>    stars
    year         year:<value>      year
    <key>        <key>:<value>     attributes[<key>]

(people share the ``person:`` namespace, so an actor who also directs is one entity). The
build report says the KG was derived this way and counts its entities and relations.
CRSLab's R-GCN needs at least one edge: a catalogue without any metadata is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from crslab_mscrs.data.custom.format import ITEMS_FILE, CatalogueItem, CustomFormatError, UserKG

METADATA_RELATIONS = (("genres", "genre", "genre"), ("director", "director", "person"), ("stars", "star", "person"))


def item_metadata_edges(item: CatalogueItem) -> List[Tuple[str, str]]:
    """``[(relation, entity name)]`` of one item (see module doc)."""
    edges = [(relation, f"{namespace}:{value}") for field_name, relation, namespace in METADATA_RELATIONS
             for value in getattr(item, field_name)]
    if item.year is not None:
        edges.append(("year", f"year:{item.year}"))
    edges += [(key, f"{key}:{value}") for key, values in item.attributes.items() for value in values]
    return list(dict.fromkeys(edges))


def metadata_kg(catalogue: Dict[str, CatalogueItem], folder: Path) -> UserKG:
    """The KG of :func:`item_metadata_edges` over the whole catalogue (items first, in file order)."""
    triples = [(item.entity, relation, entity) for item in catalogue.values()
               for relation, entity in item_metadata_edges(item)]
    if not triples:
        raise CustomFormatError(Path(folder) / ITEMS_FILE, None,
                                "no kg.tsv and no item has metadata (genres, director, stars, year, attributes) "
                                "to build a KG from; CRSLab's KG encoders need at least one edge")
    entities = [item.entity for item in catalogue.values()]
    entities += list(dict.fromkeys(t for _, _, t in triples))
    return UserKG(entities, triples, listed=False)


def kg_summary(kg: UserKG) -> Dict[str, int]:
    relations: Dict[str, int] = {}
    for _, relation, _ in kg.triples:
        relations[relation] = relations.get(relation, 0) + 1
    return relations
