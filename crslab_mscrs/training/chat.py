"""Interactive mode (CRSLab's ``--interact``): chat with a trained MSCRS / UniCRS on stdin/stdout.

Each user line is linked to KG entities with the linker the dataset builder used
(:func:`crslab_mscrs.data.entity_linking.kg_linker`, built from the dataset folder's
``entity2id.json``, ``movie_ids.json`` and ``dbpedia_subkg.json``) and to movies by their
``item_names.json`` names; the reply is generated with the conversation stage's chosen
weights (``conv_best.pth``), its ``<movie>`` slots filled with the names of the
recommender's top items (``rec_best.pth``), and the top-k items are listed.

Without ``conv_best.pth`` it refuses to chat (random weights answer nonsense) unless the config
says ``allow_untrained: true``. The dialogue goes to stdout; what it loaded and warnings to stderr.
"""
from __future__ import annotations

import json
import sys
from typing import List, Optional, TextIO, Tuple

import torch

from crslab_mscrs.batches.text import turn_text
from crslab_mscrs.data.entity_linking import item_name_linker, kg_linker, link_typed_text
from crslab_mscrs.prerequisites import MissingPrerequisite
from crslab_mscrs.training.checkpoint import load_checkpoint_weights, load_trainable_state, temporary_weights
from crslab_mscrs.training.generation import SLOT_CANDIDATES, fill_reply
from crslab_mscrs.training.settings import BatchSettings, GenerationSettings


class UserLinker:
    """Entity ids a user line names: movies (by name) first, then other KG entities, as a
    ReDial turn lists its ``@id`` movies before its linked entities."""

    def __init__(self, entity2id, item_ids, item_names, subkg=None):
        self.entity2id = {str(k): int(v) for k, v in entity2id.items()}
        self.kg = kg_linker(self.entity2id, item_ids, subkg or {})
        self.items = item_name_linker({i: item_names.name(i) for i in item_ids if item_names.has_name(i)})

    def parts(self, text: str) -> Tuple[List[int], List[int]]:
        """``(movie ids, other entity ids)`` named in ``text``."""
        movies, entities = link_typed_text(text, self.items, self.kg)
        return [int(key) for key in movies], [self.entity2id[uri] for uri in entities]

    def link(self, text: str) -> List[int]:
        movies, entities = self.parts(text)
        return list(dict.fromkeys(movies + entities))


def dataset_subkg(opt) -> dict:
    """``dbpedia_subkg.json`` of the built dataset (KG degrees break linking ties), or ``{}``."""
    try:
        folder = BatchSettings.from_opt(opt).dataset_folder()
    except Exception:  # pragma: no cover - paths not configured
        return {}
    path = folder / "dbpedia_subkg.json" if folder is not None else None
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


@torch.no_grad()
def chat(system, stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None,
         top_k: Optional[int] = None, stderr: Optional[TextIO] = None) -> List[str]:
    """Chat on stdin/stdout: each user line gets a generated reply (``<movie>`` filled) and
    the top-k recommended items. ``[EXIT]`` or end of input stops. Returns the dialogue.
    Raises :class:`MissingPrerequisite` without ``conv_best.pth`` unless ``allow_untrained``."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    top_k = int(top_k or system.settings.interact_top_k)
    conv_weights = system.run_dir / "conv_best.pth"
    final = load_checkpoint_weights(conv_weights)
    if final is not None:
        load_trainable_state(system.net, final, str(conv_weights))
        print(f"Loaded {conv_weights} (recommendations: {system.run_dir / 'rec_best.pth'}).", file=stderr)
    elif not system.settings.allow_untrained:
        raise MissingPrerequisite(f"no trained model to chat with: {conv_weights} does not exist. Train this config "
                                  "first (the same command without -i), or set allow_untrained: true "
                                  "(--set allow_untrained=true) to chat with random weights")
    else:
        print(f"No checkpoint {conv_weights}: chatting with UNTRAINED weights (allow_untrained: true).",
              file=stderr)
    system.model.eval()
    linker = UserLinker(system.vocab.get("entity2id", {}), system.item_ids.tolist(), system.item_names,
                        dataset_subkg(system.opt))
    loader = system.test_dataloader or system.train_dataloader
    placeholder = system.settings.placeholder
    context: List[str] = []
    entities: List[int] = []
    print("Enter [EXIT] to quit.", file=stderr, flush=True)

    def read_line() -> str:  # a visible prompt; piped input is echoed so transcripts read well
        print("You: ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            print(line.rstrip("\n"), file=stdout, flush=True)
        return line

    for line in iter(read_line, ""):
        text = line.strip()
        if not text:
            continue
        if "[EXIT]" in text:
            break
        context.append(turn_text(text, is_system=False))
        entities.extend(e for e in linker.link(text) if e not in entities)
        batch = system.demonstrations.live(loader.live_batch(context, entities))
        with temporary_weights(system.net, system.run_dir / "rec_best.pth"):
            (items,) = system.evaluation.top_items(batch, max(top_k, SLOT_CANDIDATES))
        with system.autocast():
            new_tokens = system.core.generate(system.to_device(batch), **GenerationSettings.from_opt(system.opt).as_kwargs())
        raw = system.core.lm_tokenizer.decode(new_tokens[0].cpu(), skip_special_tokens=True).strip()
        reply = fill_reply(raw, items, system.item_names, placeholder)
        print(f"System: {reply['reply']}", file=stdout, flush=True)
        print("Recommended: " + "; ".join(system.item_names.label(e) for e in items[:top_k]), file=stdout, flush=True)
        context.append(turn_text(reply["reply"], is_system=True))
        entities.extend(e for e in items[:reply["n_slots"]] if e not in entities)
    return context
