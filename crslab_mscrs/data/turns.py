"""CRSLab's turn rule, in one place: consecutive utterances of one role form one turn.

CRSLab's ReDial and INSPIRED loaders (``ReDialDataset._merge_conv_data``,
``InspiredDataset._convert_to_id``) merge a conversation's consecutive same-role utterances
before making samples. The evaluator (:mod:`crslab_mscrs.evaluation.instances`), the MSCRS
dataloader's text lookup (:mod:`crslab_mscrs.batches.source_text`) and the build report
(:mod:`crslab_mscrs.data.report`) each fold different fields of those groups (movie ids,
words, movie counts); the grouping itself is :func:`group_by_role`.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple


def group_by_role(dialog: Sequence[Mapping[str, Any]]) -> List[Tuple[Any, List[Mapping[str, Any]]]]:
    """``[(role, [utterances of the turn]), ...]`` in dialogue order.

    >>> [(role, len(utts)) for role, utts in group_by_role(
    ...     [{"role": "Seeker"}, {"role": "Seeker"}, {"role": "Recommender"}])]
    [('Seeker', 2), ('Recommender', 1)]
    """
    groups: List[Tuple[Any, List[Mapping[str, Any]]]] = []
    for utterance in dialog:
        role = utterance.get("role")
        if groups and groups[-1][0] == role:
            groups[-1][1].append(utterance)
        else:
            groups.append((role, [utterance]))
    return groups
