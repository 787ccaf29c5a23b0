"""Absurdly nested JSON is a located format error, not a bare RecursionError (issue 16)."""
import json

import pytest

from crslab_mscrs.data.jsonl import JsonlFormatError, read_jsonl
from crslab_mscrs.evaluation.rankings import RankingsFormatError, read_rankings

DEEP = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_rankings_line_names_file_and_line(tmp_path):
    path = tmp_path / "rankings.jsonl"
    good = json.dumps({"conv_id": "c1", "turn_index": 1, "ranked_items": list(range(100))})
    path.write_text(good + "\n" + DEEP + "\n")
    with pytest.raises(RankingsFormatError, match=r"rankings\.jsonl:2: not valid JSON \(nested too deeply"):
        read_rankings(path)


def test_deeply_nested_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "train_pool.jsonl"
    path.write_text('{"a": 1}\n' + DEEP + "\n")
    with pytest.raises(JsonlFormatError, match=r"train_pool\.jsonl:2: .*RecursionError"):
        read_jsonl(path)
