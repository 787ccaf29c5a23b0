"""Offline item features for MSCRS (docs/data.md#features-and-semantic-graphs).

Modules: :mod:`.catalogue` (items keyed by KG entity id + metadata), :mod:`.describe`
(+ ``describe_openai``, ``describe_hf``: item descriptions), :mod:`.text_encoder` (x_t),
:mod:`.image_encoder` (x_v + missing mask), :mod:`.hashing` (input hashes for manifests),
:mod:`.pipeline` (the steps behind ``data_prep/features.py``).
"""
