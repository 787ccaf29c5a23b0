"""Subcommands of the ``crslab-mscrs`` console script besides training (:mod:`crslab_mscrs.cli`).

``build-data`` (:mod:`.build_data`), ``features`` (:mod:`.features`), ``config``
(:mod:`.show_config`). Each module has ``add_arguments(parser)`` and ``main(args) -> int``;
``data_prep/*.py`` in a source checkout are thin wrappers over the same functions.
"""
