"""Paired significance of two models' per-turn metrics (crslab_mscrs/evaluation/significance.py),
on synthetic data whose answer is known."""
import json

import numpy as np
import pytest

from crslab_mscrs.evaluation import significance as sig
from crslab_mscrs.evaluation.instances import RecInstance
from crslab_mscrs.evaluation.rankings import RankingRecord, write_rankings


def test_a_clear_gain_is_better_with_an_interval_around_it():
    rng = np.random.default_rng(1)
    b = rng.random(400)
    a = b + 0.1 + rng.normal(0, 0.05, 400)
    result = sig.paired_comparison(a, b, "recall@10")
    assert result.verdict == sig.BETTER and result.p_value < 0.01
    assert result.ci_low < 0.1 < result.ci_high and result.ci_low > 0
    assert result.difference == pytest.approx(float(np.mean(a - b)))
    assert sig.paired_comparison(b, a).verdict == sig.WORSE  # the same pair the other way round


def test_noise_and_identical_models_show_no_difference():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 300).astype(float)
    noise = sig.paired_comparison(a, b)
    assert noise.verdict == sig.NO_DIFFERENCE and noise.p_value > 0.05 and noise.ci_low < 0 < noise.ci_high
    same = sig.paired_comparison(a, a)
    assert same.verdict == sig.NO_DIFFERENCE and same.p_value == 1.0 and same.ci_low == same.ci_high == 0.0
    # a tiny, consistent gain on few turns is not enough to call
    assert sig.paired_comparison([1, 0, 0], [0, 0, 0]).verdict == sig.NO_DIFFERENCE
    with pytest.raises(ValueError, match="equally long"):
        sig.paired_comparison([1.0, 0.0], [1.0])


def test_seeds_are_averaged_per_turn_before_the_pairing():
    instances = [RecInstance("c", i, (i,), ()) for i in range(1, 41)]  # turn i's label is item i
    hit = {inst.key: (inst.labels[0],) for inst in instances}
    miss = {inst.key: (999,) for inst in instances}
    # a: seed 0 finds every label, seed 1 none -> 0.5 per turn; b finds none
    (r10,) = sig.compare_models(instances, [hit, miss], [miss], metrics=("recall@10",))
    assert (r10.mean_a, r10.mean_b, r10.n) == (0.5, 0.0, 40) and r10.verdict == sig.BETTER
    assert sig.seed_average([{("c", 1): 1.0, ("c", 2): 1.0}, {("c", 1): 0.0}]) == {("c", 1): 0.5}


def _folder(tmp_path):
    """A built dataset (40 two-turn conversations, movie i mentioned twice) and a benchmark folder in
    which `good` repeats the mention (R@10 = 1), `bad` never finds it and `naive` is a baseline."""
    data = tmp_path / "data" / "dataset" / "toy" / "nltk"
    data.mkdir(parents=True)
    items = list(range(1, 121))
    (data / "entity2id.json").write_text(json.dumps({f"<m{i}>": i for i in items}))
    (data / "movie_ids.json").write_text(json.dumps(items))
    conversations = [{"conv_id": f"c{i}", "dialog": [
        {"utt_id": 0, "role": "Seeker", "text": ["x"], "movies": [f"<m{i}>"], "entity": [], "word": []},
        {"utt_id": 1, "role": "Recommender", "text": ["y"], "movies": [f"<m{i}>"], "entity": [], "word": []}]}
        for i in range(1, 41)]
    (data / "test_data.json").write_text(json.dumps(conversations))
    out = tmp_path / "results"
    good = [RankingRecord(f"c{i}", 1, tuple([i] + [j for j in items if j != i][:99])) for i in range(1, 41)]
    bad = [RankingRecord(f"c{i}", 1, tuple(j for j in reversed(items) if j != i)[:100]) for i in range(1, 41)]
    for seed in (0, 1):
        write_rankings(out / "runs" / "good" / "toy" / f"seed{seed}" / "rankings.jsonl", good)
    write_rankings(out / "runs" / "bad" / "toy" / "seed0" / "rankings.jsonl", bad)
    write_rankings(out / "runs" / "naive" / "toy" / "rankings.jsonl",
                   [RankingRecord(f"c{i}", 1, (i,)) for i in range(1, 41)], min_length=0)
    return out, data


def test_a_benchmark_folder_gets_a_verdict_table(tmp_path):
    out, data = _folder(tmp_path)
    verdicts = sig.folder_significance(out, {"toy": data}, protocols=("full",))
    pairs = {(v.model_a, v.model_b): v for v in verdicts}
    assert set(pairs) == {("bad", "naive"), ("good", "naive"), ("bad", "good")}  # baselines are b
    assert [c.verdict for c in pairs[("bad", "good")].comparisons] == [sig.WORSE] * 3
    assert [c.verdict for c in pairs[("good", "naive")].comparisons] == [sig.NO_DIFFERENCE] * 3  # both hit
    assert pairs[("good", "naive")].seeds_a == 2
    text = "\n".join(sig.significance_markdown(verdicts, "cmd"))
    assert "## toy / `full` (40 turns)" in text and "| bad | good | 1 / 2 | worse (-1.0000" in text
    assert sig.main([str(out), "--data-root", str(tmp_path / "data"), "--datasets", "toy", "--protocols",
                     "full", "--resamples", "200"]) == 0
    assert "worse" in (out / sig.SIGNIFICANCE_FILE).read_text()
