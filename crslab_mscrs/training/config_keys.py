"""Config keys read by the MSCRS / UniCRS model, dataloader and system (for config validation)."""
from __future__ import annotations

from typing import Iterable

MODEL_KEYS = {
    "lm", "lm_gguf_file", "lm_dtype", "text_encoder", "entity_dim", "num_bases",
    "use_cooccurrence_graph", "use_text_graph", "use_image_graph", "lambda_text", "lambda_image", "fusion",
    "lightgcn_layers", "features_dir", "n_prefix_rec", "n_prefix_conv", "contrastive_weight",
    "contrastive_temperature", "use_demonstrations",
}
DATALOADER_KEYS = {
    "entity_max_length", "context_max_length", "prompt_max_length", "response_max_length",
    "movie_placeholder", "item_names_file", "dialogue_text",
}
SYSTEM_KEYS = {
    "stages", "run_name", "resume", "bf16", "rec_select_metric", "ranking_depth",
    "max_new_tokens", "num_beams", "do_sample", "top_p", "no_repeat_ngram_size", "interact_top_k",
    "n_demonstrations", "demonstration_max_length", "demonstration_context_turns",
}
ALL_KEYS = MODEL_KEYS | DATALOADER_KEYS | SYSTEM_KEYS


def register_config_keys(model_names: Iterable[str]) -> None:
    """Declare our keys to :mod:`crslab_mscrs.config` validation, keeping keys that other
    components (the model package) declared for the same model names."""
    try:
        from crslab_mscrs import config as plugin_config
    except ImportError:  # pragma: no cover - validation module absent: nothing to declare
        return
    for name in model_names:
        known = set(plugin_config.MODEL_KEYS.get(name, set()))
        plugin_config.register_model_keys(name, known | ALL_KEYS)
