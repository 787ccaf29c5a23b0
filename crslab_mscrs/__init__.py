"""crslab-mscrs: a CRSLab plugin that adds MSCRS (SIGIR 2025) on a modern Python/PyTorch stack.

Importing this package
1. checks that CRSLab is installed (it must be installed with ``--no-deps``, see README),
2. applies the compatibility layer (:mod:`crslab_mscrs.compat`), idempotently,
3. registers our datasets, models, systems and evaluators into CRSLab's registries
   (:mod:`crslab_mscrs.registry`), and
4. points CRSLab's data/save path globals at our data root (:mod:`crslab_mscrs.paths`),
   so nothing is ever written into site-packages.
"""

__version__ = "0.1.0"

CRSLAB_INSTALL_HINT = "pip install --no-deps crslab==0.1.2"


def _bootstrap() -> None:
    try:
        import crslab  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised by a subprocess test
        raise ImportError(
            "crslab-mscrs needs CRSLab 0.1.2, installed WITHOUT its (unresolvable) pinned "
            f"dependencies. Run:\n\n    {CRSLAB_INSTALL_HINT}\n"
        ) from err
    import warnings

    from crslab_mscrs import compat, paths, registry

    with warnings.catch_warnings():  # torch_geometric (imported by CRSLab's KBRD/KGSF) still calls
        # torch.jit.script at import, which torch >= 2.10 deprecates: not the user's to fix
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        compat.apply()
    registry.register_all()
    paths.set_data_root(paths.resolve_data_root())


_bootstrap()
