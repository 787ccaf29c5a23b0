"""Run folders: one per recipe (a hash of the settings in the default name), the recipe recorded
inside, a folder of another recipe refused with the differences named."""
import pytest

import crslab_mscrs  # noqa: F401  (CRSLab path globals)
from crslab_mscrs.config import ConfigError, compose
from crslab_mscrs.training import run_folder


def open_run(options, seed):
    """What the system does: the folder name (settings) and then opening it."""
    return run_folder.open_run_dir(run_folder.run_dir(options, seed), options)


def opt(tmp_path, *overrides):
    options = compose("mscrs/sample", [f"save_dir={tmp_path}", *overrides])
    options["model_name"] = options["model"]  # what CRSLab's Config adds
    return options


def test_an_ablation_gets_its_own_folder_and_the_same_config_finds_its_folder(tmp_path):
    base = open_run(opt(tmp_path), seed=0)
    assert base.name.startswith("ReDial_MSCRS_seed0_") and (base / run_folder.RECORD).is_file()
    ablation = open_run(opt(tmp_path, "use_image_graph=false"), seed=0)
    assert ablation != base
    assert open_run(opt(tmp_path), seed=0) == base  # what a resume (-rs) computes
    # where files go and how long a run may take are not part of its recipe
    same = opt(tmp_path, f"rankings_out={tmp_path / 'r.jsonl'}", "rec.time_limit_min=5", "stages=[rec]")
    assert open_run(same, seed=0) == base


def test_a_folder_of_another_config_is_refused_naming_the_differences(tmp_path):
    open_run(opt(tmp_path, "run_name=mine"), seed=0)
    with pytest.raises(ConfigError) as err:
        open_run(opt(tmp_path, "run_name=mine", "rec.epoch=7", "fusion=mean"), seed=0)
    message = str(err.value)
    assert "mine" in message and "rec.epoch=2 (now 7)" in message and "fusion='sum' (now 'mean')" in message


def test_the_record_holds_the_effective_config(tmp_path):
    folder = open_run(opt(tmp_path, "seed=4"), seed=4)
    record = run_folder.read_record(folder)
    assert record["effective_config"]["seed"] == 4 and record["effective_config"]["save_dir"] == str(tmp_path)
    assert record["identity_hash"] == folder.name.rsplit("_", 1)[1]
