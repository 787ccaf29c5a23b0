"""The paper-recipe estimate's arithmetic and launch command; the throughput FLOP count; the kNN spill sweep."""
import sys

import pytest
from script_loader import load_benchmark_script

recipe = load_benchmark_script("paper_recipe")


def make_estimate(world_size=1):
    timings = {"rec": recipe.StepTiming("rec", 64, 2.0, 1), "rec_eval": recipe.StepTiming("rec_eval", 64, 0.5, 1)}
    counts = [recipe.StepCount("rec", 100, "rec: 5 epochs x 20 batches"),
              recipe.StepCount("rec_eval", 30, "rec valid"), recipe.StepCount("rec_eval", 10, "rec test")]
    return recipe.Estimate("config/x.yaml", timings, counts, world_size, 1234.0, None, "cpu")


def test_estimate_adds_batches_times_seconds_per_batch():
    assert make_estimate().total_seconds == pytest.approx(100 * 2.0 + 40 * 0.5)
    assert make_estimate(world_size=2).total_seconds == pytest.approx((100 * 2.0 + 40 * 0.5) / 2)
    report = make_estimate().report()
    assert "expected wall time: 0.1 h (220 s)" in report and "host RSS 1234 MB" in report


def test_without_estimate_the_recipe_runs_through_the_harness_with_resume(monkeypatch):
    calls = []
    monkeypatch.setattr(recipe.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert recipe.main(["--model", "mscrs", "--dataset", "inspired", "--variant", "offline",
                        "--nproc-per-node", "2", "--out", "o"]) == 0
    (cmd,) = calls
    assert cmd[0] == sys.executable and cmd[1].endswith("run_benchmark.py") and "--resume" in cmd
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2" and cmd[cmd.index("--config-variant") + 1] == "offline"


def test_throughput_flop_count_of_one_layer_by_hand():
    from types import SimpleNamespace

    throughput = load_benchmark_script("throughput")
    config = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
                             num_key_value_heads=1, vocab_size=10)
    # 2 tokens after a prefix of 1 (kv width 2): projections 2*(2*16 + 2*4*2 + 3*4*8) per token,
    # attention 4*d*(2 + 3) (token 0 sees 2 keys, token 1 sees 3), logits of 1 token 2*d*V
    expected = 2 * (2 * 16 + 2 * 4 * 2 + 3 * 4 * 8) * 2 + 4 * 4 * (2 + 3) + 2 * 4 * 10 * 1
    assert throughput.forward_flops(config, 1, 2, 1, 1) == expected
    assert throughput.forward_flops(config, 3, 2, 1, 1) == 3 * expected


class _Loader:
    def __init__(self, rows):
        self.rows = rows

    def num_batches(self, task, batch_size):
        return -(-self.rows[task] // batch_size)


def test_counts_prints_the_batches_of_every_step_type_without_timing(monkeypatch, capsys):
    from contextlib import contextmanager
    from types import SimpleNamespace

    rows = {"rec": 640, "rec_eval": 130}
    system = SimpleNamespace(settings=SimpleNamespace(stages=("rec",)),
                             opt={"rec": {"epoch": 3, "batch_size": 64, "eval_batch_size": 64}},
                             train_dataloader=_Loader(rows), valid_dataloader=_Loader(rows), test_dataloader=_Loader(rows))
    monkeypatch.setattr(recipe, "built_system", contextmanager(lambda *args: (yield system)))
    monkeypatch.setattr(recipe, "measure", lambda *args: pytest.fail("--counts times nothing"))
    assert recipe.main(["--model", "unicrs", "--dataset", "inspired", "--variant", "offline", "--counts"]) == 0
    lines = [line.split(None, 2) for line in capsys.readouterr().out.splitlines()]
    assert lines[0][:2] == ["30", "rec"] and "3 epochs x 10 batches of 64" in lines[0][2]
    assert [line[1] for line in lines[1:]] == ["rec_eval"] * (len(lines) - 1)


def test_the_spill_sweep_reuses_one_assignment_and_reports_every_ratio(capsys):
    spill = load_benchmark_script("knn_cells_spill")
    rows = spill.main(["--size", "1200", "--dim", "16", "--k", "5", "--spill", "0.9", "0.6",
                       "--cells", "cell_size=20", "--queries", "200", "--threads", "1"])
    assert [row["spill_ratio"] for row in rows] == [0.9, 0.6]
    assert 1200 <= rows[0]["entries"] <= rows[1]["entries"] <= 2400 and rows[0]["recall"] <= rows[1]["recall"]
    assert "| 0.6 |" in capsys.readouterr().out


def test_tile_products_time_the_exact_builds_default_tile_in_both_precisions(capsys):
    bench = load_benchmark_script("knn_benchmark")
    rows = bench.main(["--tile-products", "--sizes", "100000", "--dim", "8", "--threads", "1"])
    assert [row["dtype"] for row in rows] == ["float32", "bfloat16"] and rows[0]["block"] == 5792
    assert all(row["products_seconds"][100000] > 0 for row in rows)  # about 158 tiles at 1e5
    assert "tiles" in capsys.readouterr().out
