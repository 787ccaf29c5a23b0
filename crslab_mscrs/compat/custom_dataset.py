"""CRSLab dataset class for a user dataset built by :mod:`crslab_mscrs.data.custom.builder`.

A built user dataset has the INSPIRED layout, so its loader is CRSLab's ``InspiredDataset``
(with the conversation tags of :mod:`.conversation_tags`) reading
``<DATASET_PATH>/<name lower>/<tokenize>`` instead of ``.../inspired/...``. CRSLab's
``build`` would *download* a folder whose ``.built`` marker is missing and *delete* one
whose marker names another version; the class checks the marker first and raises an error
that says how to build the dataset, so CRSLab never gets to do either.
"""
from __future__ import annotations

import os
from pathlib import Path

from crslab.data.dataset.base import BaseDataset
from crslab.data.dataset.inspired.resources import resources as inspired_resources

from crslab_mscrs.data.crslab_format import check_built

from .conversation_tags import TaggedInspiredDataset

BUILD_HINT = "python data_prep/build_custom.py --source <your folder> --name {name}"


class NotBuiltResource:
    """Stands where CRSLab expects a ``DownloadableFile``: a user dataset is built, never downloaded."""

    def __init__(self, name: str):
        self.name = name

    def download_file(self, dpath):
        raise FileNotFoundError(f"{dpath}: user dataset {self.name!r} is not built; build it: "
                                + BUILD_HINT.format(name=self.name))


def custom_dataset_class(name: str, version: str) -> type:
    """A ``TaggedInspiredDataset`` subclass reading the user dataset ``name``."""

    def __init__(self, opt, tokenize, restore=False, save=False):
        import crslab.config as crslab_config

        base = inspired_resources[tokenize]
        resource = {"version": version, "file": NotBuiltResource(name),
                    "special_token_idx": base["special_token_idx"]}
        self.special_token_idx = resource["special_token_idx"]
        self.unk_token_idx = self.special_token_idx["unk"]
        dpath = os.path.join(crslab_config.DATASET_PATH, name.lower(), tokenize)
        check_built(Path(dpath), version, rebuild_hint=BUILD_HINT.format(name=name))
        BaseDataset.__init__(self, opt, dpath, resource, restore, save)

    return type(f"UserDataset_{name}", (TaggedInspiredDataset,), {"__init__": __init__, "crslab_name": name})
