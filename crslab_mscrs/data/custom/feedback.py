"""The seeker feedback of a built user dataset (``seeker_feedback.json``), for SR/RDL.

Written by :mod:`crslab_mscrs.data.custom.builder` from the conversations' ``feedback``
(``{conv_id: {entity id: {"seen": 0|1|2, "liked": 0|1|2}}}``, ReDial's questionnaire
convention) and read here into the ``{conv_id: {entity id: SeekerAnswer}}`` that
:func:`crslab_mscrs.evaluation.user_metrics.user_metrics` scores, exactly as ReDial's
``initiatorQuestions`` (:func:`crslab_mscrs.evaluation.instances.seeker_answers`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from crslab_mscrs.data.custom.format import INFO_FILE

FEEDBACK_FILE = "seeker_feedback.json"


def load_seeker_feedback(dataset_dir) -> Optional[Dict[str, Dict[int, "SeekerAnswer"]]]:
    """The answers of a built user dataset, or ``None`` when it has no ``seeker_feedback.json``."""
    from crslab_mscrs.evaluation.instances import SeekerAnswer

    path = Path(dataset_dir) / FEEDBACK_FILE
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    try:
        return {str(conv): {int(entity): SeekerAnswer(seen=int(a["seen"]), liked=int(a["liked"]))
                            for entity, a in answers.items()} for conv, answers in raw.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: expected {{conv_id: {{entity id: {{seen, liked}}}}}} ({err})") from err


def built_user_datasets(data_root) -> List[str]:
    """Folder names (lower-case dataset names) of the user datasets built under ``data_root``."""
    return sorted(p.parent.parent.name for p in Path(data_root).glob(f"dataset/*/nltk/{INFO_FILE}"))
