"""rankings.jsonl: writer/reader round trip and validation errors that name file and line."""
import json

import pytest

from crslab_mscrs.evaluation.rankings import (RankingRecord, RankingsFormatError, read_rankings,
                                              write_rankings)

ITEMS = list(range(1000, 1200))
GOOD = {"conv_id": "20001", "turn_index": 3, "ranked_items": ITEMS[:100]}


def write_lines(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_round_trip(tmp_path):
    records = [RankingRecord("20001", 3, tuple(ITEMS[:100])), RankingRecord("20002", 1, tuple(ITEMS[100:]))]
    path = tmp_path / "out" / "rankings.jsonl"
    assert write_rankings(path, records) == 2
    assert read_rankings(path, item_ids=ITEMS) == {("20001", 3): tuple(ITEMS[:100]),
                                                   ("20002", 1): tuple(ITEMS[100:])}


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "expected a JSON object"),
    ({"conv_id": "1", "turn_index": 2}, r"missing key\(s\) \['ranked_items'\]"),
    ({**GOOD, "conv_id": 20001}, "'conv_id' must be a non-empty string"),
    ({**GOOD, "turn_index": 0}, "'turn_index' must be an int >= 1"),
    ({**GOOD, "turn_index": True}, "'turn_index' must be an int >= 1"),
    ({**GOOD, "ranked_items": ITEMS[:99]}, "has 99 items, at least 100 required"),
    ({**GOOD, "ranked_items": ITEMS[:99] + ["x"]}, "list of int entity ids"),
    ({**GOOD, "ranked_items": ITEMS[:99] + [1000]}, "repeats item 1000"),
    ({**GOOD, "ranked_items": ITEMS[:99] + [7]}, "outside the item set, e.g. \\[7\\]"),
])
def test_invalid_line_is_reported_with_file_and_line(tmp_path, bad_line, message):
    path = write_lines(tmp_path / "rankings.jsonl", [GOOD, "", bad_line])
    with pytest.raises(RankingsFormatError, match=message) as info:
        read_rankings(path, item_ids=ITEMS)
    assert f"{path}:3:" in str(info.value)


def test_duplicate_turn_names_both_lines(tmp_path):
    path = write_lines(tmp_path / "rankings.jsonl", [GOOD, {**GOOD, "turn_index": 4}, GOOD])
    with pytest.raises(RankingsFormatError, match=r"rankings.jsonl:3: turn \('20001', 3\) already ranked at line 1"):
        read_rankings(path)


def test_min_length_can_be_lowered_for_small_item_sets(tmp_path):
    path = write_lines(tmp_path / "rankings.jsonl", [{**GOOD, "ranked_items": [5, 6, 7]}])
    assert read_rankings(path, min_length=3) == {("20001", 3): (5, 6, 7)}


def test_writer_refuses_invalid_records(tmp_path):
    with pytest.raises(RankingsFormatError, match="while writing"):
        write_rankings(tmp_path / "r.jsonl", [RankingRecord("1", 1, (1, 2))])


def test_one_writer_for_model_runs_sorts_cuts_to_depth_and_validates(tmp_path):
    from crslab_mscrs.evaluation.rankings import write_rankings_file

    path = tmp_path / "rankings.jsonl"
    assert write_rankings_file(path, {("20002", 1): ITEMS[:150], ("20001", 3): ITEMS[50:]}, depth=100) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["conv_id"], r["turn_index"]) for r in lines] == [("20001", 3), ("20002", 1)]
    assert all(len(r["ranked_items"]) == 100 for r in lines)
    with pytest.raises(RankingsFormatError, match="has 3 items, at least 100 required"):
        write_rankings_file(tmp_path / "short.jsonl", {("1", 1): [1, 2, 3]}, depth=100)
    with pytest.raises(RankingsFormatError, match="repeats item 5"):
        write_rankings_file(tmp_path / "rep.jsonl", {("1", 1): [5, 5, 6]}, depth=3)
    with pytest.raises(RankingsFormatError, match=r"turn \('1', 1\) already ranked at line 1"):
        write_rankings(tmp_path / "dup.jsonl", [RankingRecord("1", 1, (1, 2)), RankingRecord("1", 1, (3, 4))],
                       min_length=2)


def test_crslab_model_capture_writes_through_the_same_writer(tmp_path):
    """KBRD / KGSF test rankings (compat.prediction_capture): first row of each turn, validated."""
    import torch

    from crslab_mscrs.compat.prediction_capture import TestCapture, write_outputs

    capture = TestCapture(item_ids=[10, 11, 12], depth=3)
    capture.record_scores(torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.0, 2.0, 1.0],
                                        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 2.0, 3.0],
                                        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 3.0, 2.0]]))
    test_data = [{"role": "Recommender", "items": [10, 11], "conv_id": "7", "turn_index": 2},
                 {"role": "Seeker", "items": [12], "conv_id": "7", "turn_index": 3},
                 {"role": "Recommender", "items": [12], "conv_id": "5", "turn_index": 1}]
    out = tmp_path / "rankings.jsonl"
    write_outputs(capture, test_data, rankings_out=out)
    assert read_rankings(out, min_length=3, item_ids=[10, 11, 12]) == {("5", 1): (11, 12, 10), ("7", 2): (10, 11, 12)}
    assert out.read_text().splitlines()[0].startswith('{"conv_id": "5"')  # sorted by conversation
