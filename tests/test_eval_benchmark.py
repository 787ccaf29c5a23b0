"""The benchmark harness end to end on a tiny CRSLab-format dataset built in a tmp dir."""
import csv
import json
import sys
from pathlib import Path

import pytest

from script_loader import load_benchmark_script

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 120


harness = load_benchmark_script("run_benchmark")


def utt(i, role, movies=()):
    return {"utt_id": i, "role": role, "text": ["hi"], "movies": [f"<m{m}>" for m in movies],
            "entity": [], "word": []}


def conversation(conv_id, turns):
    return {"conv_id": conv_id, "dialog": [utt(i, role, m) for i, (role, m) in enumerate(turns)]}


def write_model_config(tmp_path: Path, model: str) -> Path:
    """``<tmp_path>/configs/<model>/redial.yaml`` naming ``model`` on the tiny ReDial; returns
    the harness's run folder of seed 0 (``<tmp_path>/results/runs/<model>/redial/seed0``)."""
    family = model.lower()
    (tmp_path / "configs" / family).mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / family / "redial.yaml").write_text(f"dataset: ReDial\ntokenize: nltk\nmodel: {model}\n")
    return tmp_path / "results" / "runs" / family / "redial" / "seed0"


def make_tiny_dataset(root: Path, name: str = "redial") -> Path:
    target = root / "dataset" / name / "nltk"
    target.mkdir(parents=True)
    train = [conversation(f"tr{i}", [("Seeker", [i % 5]), ("Recommender", [i % 3, 10 + i % 7])])
             for i in range(30)]
    test = [conversation("t1", [("Seeker", [5, 6]), ("Recommender", [6, 7]), ("Seeker", [8]),
                                ("Recommender", [5, 0])]),
            conversation("t2", [("Seeker", []), ("Recommender", [1]), ("Seeker", [1]), ("Recommender", [1, 2])])]
    for split, data in (("train", train), ("valid", train[:3]), ("test", test)):
        (target / f"{split}_data.json").write_text(json.dumps(data))
    (target / "entity2id.json").write_text(json.dumps({f"<m{i}>": i for i in range(N_ITEMS)}))
    (target / "movie_ids.json").write_text(json.dumps(list(range(N_ITEMS))))
    return root


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_baselines_end_to_end_write_csv_md_png(tmp_path):
    root = make_tiny_dataset(tmp_path / "data")
    out = tmp_path / "results"
    code = harness.main(["--models", "naive,popularity,kbrd", "--datasets", "redial,inspired",
                         "--data-root", str(root), "--out", str(out), "--seeds", "0",
                         "--config-dir", str(tmp_path / "no_configs"),
                         "--shared-data", str(tmp_path / "no_shared")])
    assert code == 1  # kbrd failed (no config) and inspired is not built; the tables are written anyway
    assert (out / "results.png").stat().st_size > 1000
    rows = read_csv(out / "results.csv")
    value = {(r["model"], r["protocol"], r["metric"]): float(r["value"]) for r in rows if r["dataset"] == "redial"}
    # hand check: naive ranks the movies mentioned so far first. Full-protocol turns:
    # t1/1 labels {6,7}: history 5,6 -> 6 at rank 1; t1/3 {5,0}: history 5,6,7,8 -> 5 at rank 4;
    # t2/1 {1}: no history; t2/3 {1,2}: history 1 -> 1 at rank 1.
    assert value[("naive", "full", "recall@1")] == pytest.approx((0.5 + 0 + 0 + 0.5) / 4)
    assert value[("naive", "full", "n_instances")] == 4
    assert value[("naive", "crslab", "n_instances")] == 7
    # dedup keeps t1/1 {7}, t1/3 {0}, t2/1 {1}, t2/3 {2}
    assert value[("naive", "dedup", "n_instances")] == 4
    assert all(r["seed"] == "" for r in rows if r["model"] in ("naive", "popularity"))
    runs = {(r["model"], r["dataset"]): r for r in json.loads((out / "runs.json").read_text())}
    assert runs[("kbrd", "redial")]["status"] == "failed"
    assert "config not found" in runs[("kbrd", "redial")]["error"]
    assert runs[("naive", "inspired")]["status"] == "failed"  # dataset not built
    md = (out / "results.md").read_text()
    assert "### redial / protocol `dedup`" in md and "dataset unavailable" in md
    assert "| kbrd | 0 | n/a |" in md          # failed model shows n/a, never a number
    assert "## Failed runs" in md
    assert (out / "runs" / "naive" / "redial" / "rankings.jsonl").is_file()
    # pairwise significance beside results.md: a model run that ranks exactly like naive ties with it
    naive_file = out / "runs" / "naive" / "redial" / "rankings.jsonl"
    twin = out / "runs" / "mscrs" / "redial" / "seed0" / "rankings.jsonl"
    twin.parent.mkdir(parents=True)
    twin.write_text(naive_file.read_text())
    ctx = harness.load_dataset_context("redial", root, "test", tmp_path / "no_shared", ["full", "dedup"])
    harness.write_pairwise_significance(out, {"redial": ctx, "inspired": None}, ["full", "dedup", "crslab"], [])
    table = (out / "significance.md").read_text()
    assert "## redial / `full` (4 turns)" in table and "## redial / `dedup` (4 turns)" in table
    assert "| mscrs | naive | 1 / 1 | no difference (+0.0000" in table
    assert "| mscrs | popularity |" in table and "| naive | popularity |" not in table  # baselines: no pair


def test_popularity_ranking_uses_train_counts(tmp_path):
    root = make_tiny_dataset(tmp_path / "data")
    records = harness.baseline_rankings("popularity", root / "dataset" / "redial" / "nltk")
    # train: seeker i%5 (0..4 six times each), recommender i%3 (10 each) and 10+i%7
    assert records[0].ranked_items[:3] == (0, 1, 2)


def test_subprocess_runs_record_exit_code_time_and_memory(tmp_path):
    code, wall, peak = harness.run_subprocess(
        [sys.executable, "-c", "x = bytearray(80_000_000); print('done')"], tmp_path / "ok.log", None)
    assert code == 0 and wall > 0 and peak >= 80
    assert "done" in (tmp_path / "ok.log").read_text()
    code, _, _ = harness.run_subprocess([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "bad.log", None)
    assert code == 3
    code, wall, _ = harness.run_subprocess([sys.executable, "-c", "import time; time.sleep(30)"],
                                           tmp_path / "slow.log", timeout=0.5)
    assert code != 0 and wall < 20 and "killed" in (tmp_path / "slow.log").read_text()


def test_epoch_overrides_and_metrics_json(tmp_path):
    config = tmp_path / "m.yaml"
    # a model without a family base (configs/README.md): only the sections written here
    config.write_text("model: MyCRS\npretrain:\n  epoch: 3\nrec:\n  epoch: 9\nconv:\n  batch_size: 2\n")
    assert harness.epoch_overrides(config, 1) == ["--set", "pretrain.epoch=1", "--set", "rec.epoch=1"]
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"crslab_test_metrics": {"bleu@1": 0.2, "dist@1": None},
                                   "generation": {"dist@2_per_reply": 1.5}, "seed": 0}))
    rows = harness.metrics_json_rows(metrics, "kbrd", "redial", "0")
    assert {(r.protocol, r.metric, r.value) for r in rows} == {
        ("crslab_reported", "bleu@1", 0.2), ("generation", "dist@2_per_reply", 1.5)}
    # our systems nest test metrics per stage, beside validation history
    metrics.write_text(json.dumps({"seed": 1, "stages": {
        "rec": {"chosen_epoch": 2, "valid_history": [0.1, 0.2], "test": {"recall@10": 0.3}},
        "conv": {"test": {"ppl": 40.0, "generation": {"bleu@1": 0.1, "embedding_metrics": "n/a"}}}}}))
    rows = harness.metrics_json_rows(metrics, "mscrs", "redial", "1")
    assert {(r.protocol, r.metric, r.value) for r in rows} == {
        ("reported_rec", "recall@10", 0.3), ("reported_conv", "ppl", 40.0),
        ("reported_conv_generation", "bleu@1", 0.1)}


@pytest.mark.parametrize("recipe", sorted((REPO / "benchmarks" / "recipes").glob("*.args")), ids=lambda p: p.stem)
def test_shipped_recipes_read_as_arguments_and_give_valid_configs(recipe):
    from crslab_mscrs.config import load_config
    # a recipe comes after the command line's own flags and wins over them
    args = harness.build_parser().parse_args(["--datasets", "inspired", "--set", "rec.time_limit_min=2",
                                              f"@{recipe}"])
    assert args.overrides and all("=" in flag for flag in args.overrides)
    for model in ("mscrs", "unicrs"):
        for dataset in harness.validate_args(args)[1]:
            opt = load_config(REPO / "config" / model / f"{dataset}_offline.yaml", args.overrides)
            assert opt["rec"].get("time_limit_min") is None


def test_recipe_comparison_reads_overrides_as_they_act():
    cmd = ["run_crslab.py", "--config", "c.yaml", "--seed", "0", "--set", "rec.epoch=1"]
    same = cmd + ["--set", "rec.epoch=3", "--set", "rec.epoch=1"]
    assert harness.recipe_changes(cmd, same) == []
    assert harness.recipe_changes(cmd, cmd + ["--set", "rec.epoch=2"]) == [
        "--set: ['rec.epoch=1'] -> ['rec.epoch=2']"]


def test_runs_launch_through_torchrun_and_the_world_size_is_part_of_the_recipe():
    assert harness.launcher(None) == [sys.executable]
    torchrun = harness.launcher(2)
    assert torchrun[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc_per_node=2" in torchrun
    cmd = ["run_crslab.py", "--config", "c.yaml", "--seed", "0"]
    assert harness.recipe_changes(harness.launcher(None) + cmd, torchrun + cmd) == [
        "--nproc_per_node: None -> 2"]


def test_unknown_model_is_rejected():
    with pytest.raises(SystemExit, match="unknown or empty --models"):
        harness.main(["--models", "naive,gpt9"])


@pytest.mark.realdata
def test_quick_mode_runs_in_seconds(tmp_path):
    if not (REPO.parent / "shared" / "data" / "redial" / "raw" / "test_data.jsonl").is_file():
        pytest.skip("shared ReDial data not present")
    out = tmp_path / "quick"
    assert harness.main(["--quick", "--models", "naive,popularity", "--out", str(out)]) == 0
    rows = read_csv(out / "results.csv")
    assert any(r["metric"] == "recall@10" and r["protocol"] == "full" for r in rows)
    for name in ("results.csv", "results.md", "results.png"):
        assert (out / name).is_file()


def test_reuse_scores_earlier_model_outputs_without_rerunning(tmp_path, monkeypatch):
    root = make_tiny_dataset(tmp_path / "data")
    run_dir = write_model_config(tmp_path, "KBRD")
    out = tmp_path / "results"
    run_dir.mkdir(parents=True)
    # a perfect ranking for the four test turns, as a finished earlier run would have left it
    firsts = {("t1", 1): [6, 7], ("t1", 3): [5, 0], ("t2", 1): [1], ("t2", 3): [1, 2]}
    with open(run_dir / "rankings.jsonl", "w") as f:
        for (conv_id, turn), labels in firsts.items():
            ranked = labels + [i for i in range(N_ITEMS) if i not in labels]
            f.write(json.dumps({"conv_id": conv_id, "turn_index": turn, "ranked_items": ranked[:100]}) + "\n")
    (run_dir / "metrics.json").write_text(json.dumps({"crslab_test_metrics": {"hit@1": 0.5}}))
    (run_dir / "run_stats.json").write_text(json.dumps({
        "exit_code": 0, "wall_s": 12.5, "peak_rss_mb": 300.0, "hardware": "test CPU, 2 cores, no GPU",
        "command": ["python", "run_crslab.py", "--set", "rec.epoch=2", "--set", "stages=[rec]"]}))

    def no_subprocess(*args, **kwargs):
        raise AssertionError("--reuse must not start the model run again")

    monkeypatch.setattr(harness, "run_subprocess", no_subprocess)
    code = harness.main(["--models", "kbrd", "--datasets", "redial", "--data-root", str(root), "--out", str(out),
                         "--seeds", "0", "--config-dir", str(tmp_path / "configs"), "--reuse",
                         "--set", "stages=[rec]", "--shared-data", str(tmp_path / "no_shared")])
    assert code == 0
    rows = read_csv(out / "results.csv")
    value = {(r["protocol"], r["metric"]): float(r["value"]) for r in rows if r["model"] == "kbrd"}
    assert value[("full", "recall@50")] == pytest.approx(1.0)
    runs = json.loads((out / "runs.json").read_text())
    assert runs[0]["status"] == "ok" and any("reused" in note for note in runs[0]["notes"])
    assert any("stages=[rec]" in note for note in runs[0]["notes"])
    # the wall time and memory measured by the original run are kept
    assert runs[0]["wall_s"] == pytest.approx(12.5) and runs[0]["peak_rss_mb"] == pytest.approx(300.0)
    # ... and so are the overrides and hardware of the original run, not those of this invocation
    assert any("rec.epoch=2" in note for note in runs[0]["notes"])
    assert any("test CPU, 2 cores" in note for note in runs[0]["notes"])


def test_config_variant_prefers_dataset_variant_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for model, names in {"mscrs": ["inspired.yaml", "inspired_offline.yaml"], "kbrd": ["inspired.yaml"]}.items():
        (tmp_path / "cfg" / model).mkdir(parents=True)
        for name in names:
            (tmp_path / "cfg" / model / name).write_text("dataset: Inspired\n")
    pick = harness.model_config_path
    assert pick(Path("cfg"), "mscrs", "inspired", False, "offline").name == "inspired_offline.yaml"
    assert pick(Path("cfg"), "kbrd", "inspired", False, "offline").name == "inspired.yaml"
    assert pick(Path("cfg"), "mscrs", "inspired", False).name == "inspired.yaml"


def test_no_run_reports_missing_model_runs_as_not_run(tmp_path, monkeypatch):
    root = make_tiny_dataset(tmp_path / "data")
    write_model_config(tmp_path, "KBRD")

    def no_subprocess(*args, **kwargs):
        raise AssertionError("--no-run must not start a model run")

    monkeypatch.setattr(harness, "run_subprocess", no_subprocess)
    out = tmp_path / "results"
    assert harness.main(["--models", "naive,kbrd", "--datasets", "redial", "--data-root", str(root),
                         "--out", str(out), "--seeds", "0", "--config-dir", str(tmp_path / "configs"),
                         "--no-run", "--shared-data", str(tmp_path / "no_shared")]) == 0
    runs = {r["model"]: r for r in json.loads((out / "runs.json").read_text())}
    assert runs["naive"]["status"] == "ok" and runs["kbrd"]["status"] == "not run"
    table = (out / "results.md").read_text()
    kbrd_row = next(line for line in table.splitlines() if line.startswith("| kbrd | 0 |"))
    assert "n/a" in kbrd_row and "## Failed runs" not in table


def test_resume_continues_a_killed_mscrs_run_from_its_own_checkpoints(tmp_path, monkeypatch):
    """Each model run keeps its checkpoints in its own folder; ``--resume`` restarts a killed
    MSCRS run with ``-rs`` (same recipe only) and adds up its wall time."""
    root = make_tiny_dataset(tmp_path / "data")
    run_dir = write_model_config(tmp_path, "MSCRS")
    out = tmp_path / "results"
    commands = []

    def fake_run(cmd, log_path, timeout, append=False):
        commands.append((cmd, append))
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a" if append else "w") as log:
            log.write("training...\n")
        # while a run trains, its record says so: a harness killed with it leaves exit code null
        assert json.loads((run_dir / "run_stats.json").read_text())["exit_code"] is None
        if len(commands) == 1:  # killed in the conv stage, after writing the rec stage's outputs
            (run_dir / "rankings.jsonl").write_text("")
            (run_dir / "metrics.json").write_text("{}")
            return -9, 100.0, 500.0
        ranked = [6, 7, 5, 0, 1, 2] + [i for i in range(N_ITEMS) if i not in (6, 7, 5, 0, 1, 2)]
        with open(run_dir / "rankings.jsonl", "w") as f:
            for conv_id, turn in (("t1", 1), ("t1", 3), ("t2", 1), ("t2", 3)):
                f.write(json.dumps({"conv_id": conv_id, "turn_index": turn, "ranked_items": ranked[:100]}) + "\n")
        (run_dir / "metrics.json").write_text(json.dumps({"stages": {}}))
        return 0, 20.0, 700.0

    monkeypatch.setattr(harness, "run_subprocess", fake_run)
    args = ["--models", "mscrs", "--datasets", "redial", "--data-root", str(root), "--out", str(out), "--seeds", "0",
            "--config-dir", str(tmp_path / "configs"), "--shared-data", str(tmp_path / "no_shared"),
            "--set", "rec.epoch=2"]
    assert harness.main(args) == 1  # the killed run is reported as failed
    assert harness.main(args + ["--no-run"]) == 0  # and is not scored as if it had finished
    assert json.loads((out / "runs.json").read_text())[0]["status"] == "not run"
    first_cmd, _ = commands[0]
    assert first_cmd[first_cmd.index("--save-dir") + 1] == str((run_dir / "checkpoints").resolve())
    assert "-rs" not in first_cmd

    # another recipe is refused rather than mixed into the killed run's checkpoints
    assert harness.main(args[:-1] + ["rec.epoch=3", "--resume"]) == 1
    assert len(commands) == 1
    runs = json.loads((out / "runs.json").read_text())
    assert "rec.epoch=2" in runs[0]["error"] and "rec.epoch=3" in runs[0]["error"]

    assert harness.main(args + ["--resume"]) == 0
    resumed_cmd, appended = commands[1]
    assert resumed_cmd[-1] == "-rs" and appended
    stats = json.loads((run_dir / "run_stats.json").read_text())
    assert stats["wall_s"] == pytest.approx(120.0) and stats["peak_rss_mb"] == pytest.approx(700.0)
    assert stats["invocations"] == 2
    runs = json.loads((out / "runs.json").read_text())
    assert runs[0]["status"] == "ok" and any("resumed" in note for note in runs[0]["notes"])


@pytest.mark.parametrize("left_behind", ["record of a killed harness", "checkpoints only"])
def test_resume_after_the_harness_itself_was_killed(tmp_path, monkeypatch, left_behind):
    """Ctrl-C or a reboot kills the harness with its run: no exit code was recorded (or no
    record at all, from an older harness); the run's checkpoints folder is enough to resume."""
    root = make_tiny_dataset(tmp_path / "data")
    run_dir = write_model_config(tmp_path, "UniCRS")
    out = tmp_path / "results"
    (run_dir / "checkpoints" / "ReDial_UniCRS_seed0").mkdir(parents=True)
    if left_behind == "record of a killed harness":
        (run_dir / "rankings.jsonl").write_text("")  # outputs of a finished rec stage
        (run_dir / "metrics.json").write_text("{}")
        config = (tmp_path / "configs" / "unicrs" / "redial.yaml").resolve()
        (run_dir / "run_stats.json").write_text(json.dumps({"exit_code": None, "command": [
            "python", "run_crslab.py", "--config", str(config), "--seed", "0", "--set", "rec.epoch=2"]}))
    commands = []

    def fake_run(cmd, log_path, timeout, append=False):
        commands.append(cmd)
        log_path.write_text("failed\n")
        return 3, 1.0, 10.0  # fails again: what matters is how it was started

    monkeypatch.setattr(harness, "run_subprocess", fake_run)
    args = ["--models", "unicrs", "--datasets", "redial", "--data-root", str(root), "--out", str(out),
            "--seeds", "0", "--config-dir", str(tmp_path / "configs"), "--shared-data", str(tmp_path / "no_shared"),
            "--set", "rec.epoch=2"]
    assert harness.main(args + ["--no-run"]) == 0  # never scored as a finished run
    assert json.loads((out / "runs.json").read_text())[0]["status"] == "not run"
    assert harness.main(args + ["--resume"]) == 1
    assert commands and commands[0][-1] == "-rs"
    runs = json.loads((out / "runs.json").read_text())
    assert any("killed with the harness" in note for note in runs[0]["notes"])
