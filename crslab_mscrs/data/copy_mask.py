"""KGSF's copy mask: which vocabulary tokens the decoder's copy head may emit.

KGSF (Zhou et al., KDD 2020, ``model/crs/kgsf/kgsf.py``) multiplies its copy logits by
``copy_mask`` (``np.load(<model>/kgsf/<Dataset>/copy_mask.npy).astype(bool)``, shape
``[vocab_size]``). The original masks ("mask4key" + "mask4movie") allow ConceptNet words
and movie tokens. Ours allows a token when its lower-cased form is a concept word of the
word graph, or when it is a word of a movie title seen in the TRAIN dialogues (titles are
written into the text in place of ``@id`` mentions). Special tokens are never copied.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator, Tuple

import numpy as np

from crslab_mscrs.data.crslab_format import SPECIAL_TOKENS, kgsf_version, write_built_marker


def build_copy_mask(token2id: Dict[str, int], concept2id: Dict[str, int],
                    movie_title_tokens: Iterable[str] = ()) -> np.ndarray:
    """Boolean mask of shape ``[len(token2id)]`` (see module doc)."""
    if sorted(token2id.values()) != list(range(len(token2id))):
        raise ValueError("token2id ids must be exactly 0..len-1 (KGSF sizes its output by len)")
    title_tokens = set(movie_title_tokens)
    mask = np.zeros(len(token2id), dtype=bool)
    for token, idx in token2id.items():
        if token in SPECIAL_TOKENS:
            continue
        if token.lower() in concept2id or token in title_tokens:
            mask[idx] = True
    return mask


def copy_mask_dir(data_root: Path, crslab_dataset: str) -> Path:
    """``<data_root>/model/kgsf/<crslab_dataset>``, where KGSF reads its copy mask."""
    return Path(data_root) / "model" / "kgsf" / crslab_dataset


def save_copy_mask(directory: Path, crslab_dataset: str, mask: np.ndarray) -> Path:
    """Save ``copy_mask.npy`` and its ``.built`` into ``directory`` (a staged build folder)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "copy_mask.npy"
    np.save(path, mask)
    write_built_marker(directory, kgsf_version(crslab_dataset))
    return path


def write_copy_mask(data_root: Path, crslab_dataset: str, mask: np.ndarray) -> Path:
    """Save ``<data_root>/model/kgsf/<crslab_dataset>/copy_mask.npy`` and its ``.built``,
    atomically (:mod:`crslab_mscrs.data.atomic_build`)."""
    from crslab_mscrs.data.atomic_build import atomic_build

    final = copy_mask_dir(data_root, crslab_dataset)
    with atomic_build(final) as tmp:
        save_copy_mask(tmp, crslab_dataset, mask)
    return final / "copy_mask.npy"


@contextmanager
def staged_dataset_and_mask(data_root: Path, out_dir: Path, crslab_dataset: str) -> Iterator[Tuple[Path, Path]]:
    """``(dataset folder, copy-mask folder)`` of one build, staged together: both are swapped
    in when the block succeeds, neither when it fails (:mod:`crslab_mscrs.data.atomic_build`)."""
    from crslab_mscrs.data.atomic_build import AtomicBuild

    with AtomicBuild() as build:
        yield build.stage(out_dir), build.stage(copy_mask_dir(data_root, crslab_dataset))
