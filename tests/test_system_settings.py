"""Config keys of the MSCRS system read in one place (crslab_mscrs.training.settings), and
the typed run state saved in ``last.pth``."""
import random

import numpy as np
import pytest
import torch

from crslab_mscrs.config import base_defaults
from crslab_mscrs.training.checkpoint import (CHECKPOINT_VERSION, atomic_save, load_checkpoint,
                                              load_checkpoint_weights, save_run_checkpoint)
from crslab_mscrs.training.run_state import (EpochRecord, PartialEpoch, RngState, RunCheckpoint,
                                             StageProgress)
from crslab_mscrs.training.settings import (BatchSettings, GenerationSettings, RunSettings,
                                            StageSettings)


def test_stage_settings_defaults_and_checks():
    """What a partial stage section leaves out comes from mscrs/base.yaml (the one place of defaults)."""
    base = base_defaults("mscrs/base")
    stage = StageSettings.from_opt({"rec": {"epoch": 2, "batch_size": 8, "optimizer": {"lr": 3e-4}}}, "rec")
    assert (stage.epochs, stage.batch_size, stage.eval_batch_size) == (2, 8, base["rec"]["eval_batch_size"])
    assert stage.warmup_steps == base["rec"]["warmup_steps"] != base["conv"]["warmup_steps"]
    assert stage.gradient_accumulation_steps == 1 and stage.max_batches_per_epoch is None and stage.validate
    assert stage.optimizer.name == "AdamW" and stage.optimizer.lr == 3e-4
    assert stage.optimizer.weight_decay == base["rec"]["optimizer"]["weight_decay"]
    with pytest.raises(KeyError, match="'conv:' is missing"):
        StageSettings.from_opt({}, "conv")
    with pytest.raises(KeyError, match="rec.batch_size"):
        StageSettings.from_opt({"rec": {"epoch": 1}}, "rec")
    with pytest.raises(ValueError, match="rec.time_limit_min"):
        StageSettings.from_opt({"rec": {"epoch": 1, "batch_size": 2, "time_limit_min": 0}}, "rec")


def test_max_steps_is_a_deprecated_alias_of_max_batches_per_epoch():
    with pytest.warns(FutureWarning, match="'rec.max_steps' is deprecated.*'rec.max_batches_per_epoch'"):
        stage = StageSettings.from_opt({"rec": {"epoch": 1, "batch_size": 2, "max_steps": 5}}, "rec")
    assert stage.max_batches_per_epoch == 5
    new = StageSettings.from_opt({"rec": {"epoch": 1, "batch_size": 2, "max_batches_per_epoch": 5}}, "rec")
    assert new == stage
    with pytest.raises(ValueError, match="both set"):
        StageSettings.from_opt({"rec": {"epoch": 1, "batch_size": 2, "max_steps": 5,
                                        "max_batches_per_epoch": 4}}, "rec")


def test_run_generation_and_batch_settings_from_one_option_dict(tmp_path):
    opt = {"dataset": "ReDial", "model_name": "MSCRS", "save_dir": str(tmp_path), "seed": None,
           "stages": ["rec", "conv"], "num_beams": 2, "context_max_length": 64}
    run = RunSettings.from_opt(opt)
    assert run.seed == 0 and run.stages == ("rec", "conv") and run.run_dir.parent == tmp_path
    assert run.run_dir.name.startswith("ReDial_MSCRS_seed0_")  # + a hash of the settings (run_folder.py)
    assert GenerationSettings.from_opt(opt).as_kwargs() == {"max_new_tokens": 50, "num_beams": 2, "do_sample": False,
                                                           "top_p": None, "no_repeat_ngram_size": 3}
    assert BatchSettings.from_opt(opt).limits.context_max_length == 64
    with pytest.raises(ValueError, match="'stages'"):
        RunSettings.from_opt(dict(opt, stages=["recommend"]))
    with pytest.raises(ValueError, match="'dialogue_text'"):
        BatchSettings.from_opt({"dialogue_text": "words"})
    with pytest.raises(FileNotFoundError, match="'item_names_file'"):
        BatchSettings.from_opt({"item_names_file": str(tmp_path / "absent.json")}).item_names_path()


def test_last_checkpoint_holds_only_tensors_and_plain_types(tmp_path):
    """``last.pth`` loads with ``weights_only=True`` and restores the random state exactly."""
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    rng = RngState.capture()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    progress = StageProgress("rec", epoch_done=0, best_value=0.5, best_epoch=0,
                             history=[EpochRecord(0, 0.5, time_limit_reached=True)],
                             partial=PartialEpoch(1, 3, rng, 2.0, 8, 1))
    path = tmp_path / "last.pth"
    save_run_checkpoint(RunCheckpoint(["pretrain"], progress, {"w": torch.ones(2)}, {"state": {}}, {"last_epoch": 1},
                                      7, rng, {"pretrain": {"note": "x"}}), path)
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == CHECKPOINT_VERSION
    loaded = load_checkpoint(path)
    assert loaded.completed == ["pretrain"] and loaded.global_step == 7
    assert loaded.current.history == progress.history and loaded.current.partial.batches_done == 3
    loaded.current.partial.epoch_rng.restore()
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_a_version_1_checkpoint_is_refused_with_a_message(tmp_path):
    path = tmp_path / "last.pth"
    atomic_save({"version": 1, "completed": [], "rng": {"numpy": np.random.get_state()}}, path)
    with pytest.raises(RuntimeError, match="last.pth: not a checkpoint of version 2"):
        load_checkpoint(path)
    best = tmp_path / "rec_best.pth"
    atomic_save({"version": 1, "stage": "rec", "epoch": 0, "valid": 0.1, "model": {"w": torch.zeros(1)}}, best)
    assert torch.equal(load_checkpoint_weights(best)["w"], torch.zeros(1))  # weight files keep loading


def test_every_key_the_settings_read_is_declared_for_config_validation():
    """A key read in settings.py but not declared would be refused by config validation."""
    import inspect
    import re

    from crslab_mscrs import config
    from crslab_mscrs.training import settings
    from crslab_mscrs.training.config_keys import ALL_KEYS

    read = set(re.findall(r'_(?:get|given)\(opt, "(\w+)"', inspect.getsource(settings)))
    read |= set(re.findall(r'"(\w+_max_length)"', inspect.getsource(settings.EncodingLimits)))
    assert {"seed", "stages", "num_beams", "context_max_length", "item_names_file"} <= read
    assert read <= ALL_KEYS | set(config.COMMON_KEYS) | {"model_name"}, read - ALL_KEYS - set(config.COMMON_KEYS)
    stage_keys = set(re.findall(r'section(?:\.get\(|\[)"(\w+)"', inspect.getsource(settings.StageSettings)))
    stage_keys |= set(re.findall(r'_stage_get\(section, stage, "(\w+)"', inspect.getsource(settings.StageSettings)))
    assert "max_batches_per_epoch" in stage_keys and stage_keys <= config.STAGE_KEYS
