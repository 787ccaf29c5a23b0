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
