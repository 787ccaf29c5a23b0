"""Config keys read by the MSCRS / UniCRS model, dataloader and system (for config validation);
the dataloader's and the system's are declared where they are read (:mod:`.settings`)."""
from __future__ import annotations

from typing import Iterable

from crslab_mscrs.training.settings import DATALOADER_KEYS, SYSTEM_KEYS

MODEL_KEYS = {
    "lm", "lm_gguf_file", "lm_dtype", "lm_activation_checkpointing", "text_encoder", "entity_dim", "num_bases",
    "use_cooccurrence_graph", "use_text_graph", "use_image_graph", "lambda_text", "lambda_image", "fusion",
    "lightgcn_layers", "cooccurrence_input", "cooccurrence_layers", "graph_edge_weights", "features_dir", "n_prefix_rec", "n_prefix_conv", "contrastive_weight",
    "contrastive_temperature", "use_demonstrations",
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
