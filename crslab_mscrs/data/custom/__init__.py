"""Bring your own dataset (docs/own_data.md): the input format and the generic builder.

    from crslab_mscrs.data.custom import build_custom
    build_custom("my_folder", "data", "MyMovies")   # -> data/dataset/mymovies/nltk, CRSLab name MyMovies
"""
from crslab_mscrs.data.custom.builder import build_custom, check_dataset_name, custom_dataset_dir
from crslab_mscrs.data.custom.format import CustomFormatError

__all__ = ["build_custom", "check_dataset_name", "custom_dataset_dir", "CustomFormatError"]
