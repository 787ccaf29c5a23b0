"""Tag every CRSLab sample with the conversation and turn it came from.

CRSLab's datasets merge consecutive messages of one role into a turn and emit one sample
per turn after the first (``_augment_and_add``), but drop the conversation id, so test
predictions cannot be matched back to conversations. These subclasses add two keys to
each sample and change nothing else:

- ``conv_id``: the conversation's ``conv_id`` (ReDial's ``conversationId``),
- ``turn_index``: 0-based index of the turn in the merged sequence (the first sample of a
  conversation is turn 1, since turn 0 has no context).

CRSLab's dataloaders ignore unknown keys, so KBRD/KGSF behave exactly as before.
"""
from __future__ import annotations

from crslab.data.dataset.inspired.inspired import InspiredDataset
from crslab.data.dataset.redial.redial import ReDialDataset
from tqdm import tqdm


class ConversationTagsMixin:
    """Replaces ``_raw_data_process`` by one that keeps conversation ids and turn indices."""

    def _merge_turns(self, conversation: dict) -> list:
        raise NotImplementedError

    def _raw_data_process(self, raw_data):
        samples = []
        for conversation in tqdm(raw_data, desc="conversations"):
            merged_turns = self._merge_turns(conversation)
            for k, sample in enumerate(self._augment_and_add(merged_turns)):
                sample["conv_id"] = str(conversation.get("conv_id"))
                sample["turn_index"] = k + 1
                samples.append(sample)
        return samples


class TaggedReDialDataset(ConversationTagsMixin, ReDialDataset):
    def _merge_turns(self, conversation):
        return self._merge_conv_data(conversation["dialog"])


class TaggedInspiredDataset(ConversationTagsMixin, InspiredDataset):
    def _merge_turns(self, conversation):
        return self._convert_to_id(conversation)
