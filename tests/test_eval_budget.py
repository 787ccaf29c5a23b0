"""What each run trained, per stage, as a share of the paper's recipe (crslab_mscrs/evaluation/budget.py)."""
import json

import pytest

from crslab_mscrs.evaluation.budget import StageBudget, describe_run, recipe_epochs, run_budget


def metrics(rec_batches=(48,), full=512, conv=None):
    """A metrics.json of a CPU-budget run: rec capped at 48 of 512 batches for one epoch, no pretrain."""
    stages = {"rec": {"valid_history": [{"epoch": i, "valid": None, "batches": b} for i, b in enumerate(rec_batches)],
                      "budget": {"epochs": len(rec_batches), "batches_per_epoch": full, "batch_size": 16,
                                 "max_batches_per_epoch": 48}}}
    if conv is not None:
        stages["conv"] = conv
    return {"stages": stages}


def test_a_capped_epoch_reads_as_a_share_of_one_of_the_recipes_epochs():
    rec = run_budget(metrics(), {"pretrain": 5, "rec": 20, "conv": 10})
    assert [b.stage for b in rec] == ["pretrain", "rec", "conv"]
    assert rec[1].epoch_share == pytest.approx(48 / 512)
    assert rec[1].recipe_share == pytest.approx(48 / 512 / 20)
    assert rec[1].describe() == "rec 9.4 % of 1 of 20 epochs (0.5 % of the recipe)"
    assert rec[0].describe() == "pretrain not run (recipe of 5 epochs)" and rec[0].recipe_share == 0.0


def test_full_recipe_and_older_runs_without_batch_counts():
    full = StageBudget("rec", 5, 5, (100,) * 5, 100)
    assert full.describe() == "rec 100 % of 5 of 5 epochs" and full.recipe_share == 1.0
    old = run_budget({"stages": {"conv": {"valid_history": [{"epoch": 0, "valid": 2.9}]}}}, {"conv": 10})
    assert old[2].describe() == "conv 1 of 10 epochs (batches not recorded)" and old[2].recipe_share is None


def test_recipe_is_the_packaged_config_without_overrides(tmp_path):
    assert recipe_epochs("mscrs", "inspired") == {"pretrain": 5, "rec": 20, "conv": 10}  # authors' INSPIRED
    assert recipe_epochs("unicrs", "redial") == {"pretrain": 5, "rec": 5, "conv": 10}  # authors' ReDial
    assert recipe_epochs("gpt9", "redial") == {}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics()))
    assert describe_run(path, "mscrs", "inspired") == ("pretrain not run (recipe of 5 epochs), "
                                                      "rec 9.4 % of 1 of 20 epochs (0.5 % of the recipe), "
                                                      "conv not run (recipe of 10 epochs)")
    path.write_text(json.dumps({"crslab_test_metrics": {"hit@1": 0.1}}))
    assert describe_run(path, "kbrd", "redial").startswith("not recorded")


def test_crslab_loops_are_counted_in_whole_epochs_from_their_log_lines(tmp_path):
    from loguru import logger

    from crslab_mscrs.compat.epoch_count import EpochCounter

    with EpochCounter() as counter:  # what KBRD's fit() logs, 3 rec epochs then 1 conversation epoch
        for line in ("[Recommendation epoch 0]", "[Recommendation epoch 1]", "[Recommendation epoch 2]",
                     "[Conversation epoch 0]", "[Train]"):
            logger.info(line)
    logger.info("[Recommendation epoch 7]")  # after the block: not counted
    assert counter.epochs == {"rec": 3, "conv": 1}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"stages": counter.stages_summary({"rec": 3, "conv": 1})}))
    assert describe_run(path, "kbrd", "inspired") == ("rec 100 % of 3 of 20 epochs (15 % of the recipe), "
                                                      "conv 100 % of 1 of 5 epochs (20 % of the recipe)")
    assert describe_run(path, "kgsf", "inspired").startswith("pretrain not run (recipe of 3 epochs), rec 100 %")


def test_older_crslab_runs_are_backfilled_from_their_log(tmp_path):
    from crslab_mscrs.compat.epoch_count import backfill

    (tmp_path / "run.log").write_text("... - [Pretrain epoch 0]\n... - [Recommendation epoch 0]\n"
                                      "... - [Recommendation epoch 1]\n... - [Conversation epoch 0]\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"stages": {"conv": {"test": {"generation": {}}}}}))
    assert backfill(tmp_path) == {"pretrain": 1, "rec": 2, "conv": 1}
    stages = json.loads((tmp_path / "metrics.json").read_text())["stages"]
    assert stages["conv"]["test"] == {"generation": {}} and len(stages["rec"]["valid_history"]) == 2
