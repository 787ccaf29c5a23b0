"""MSCRS / UniCRS model modules: entity encoder, prompt encoder, prefix cache, PromptCRS.

Import submodules directly (``from crslab_mscrs.model.prompt_crs import PromptCRS``); this
package file stays import-light so that ``crslab_mscrs.model.loading`` is cheap to import.
"""
