"""The one JSONL reader (crslab_mscrs.data.jsonl): every malformed line is named by file and line,
whichever module reads the file."""
import pytest

from crslab_mscrs.data.jsonl import JsonlFormatError, iter_jsonl, read_jsonl


def test_values_blank_lines_and_limit(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n[2]\n"three"\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, [2]), (4, "three")]
    assert read_jsonl(path, limit=2) == [{"a": 1}, [2]]


def test_a_malformed_line_names_file_and_line_or_is_collected(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(JsonlFormatError, match=r"a.jsonl:2: malformed JSON line"):
        read_jsonl(path)
    malformed = []
    assert [v for _, v in iter_jsonl(path, malformed=malformed)] == [{"a": 1}, {"a": 3}]
    assert [(e.path, e.line_no) for e in malformed] == [(path, 2)]


@pytest.mark.parametrize("reader", ["instances", "descriptions", "train_conversations", "replies"])
def test_modules_read_jsonl_through_it(tmp_path, reader):
    path = tmp_path / "test_replies.jsonl"
    path.write_text('{"reply": "a", "reference": "b", "item_id": 1, "description": "d"}\n{oops\n')
    if reader == "instances":
        from crslab_mscrs.evaluation.instances import load_jsonl as read
    elif reader == "descriptions":
        from crslab_mscrs.features.describe import load_descriptions as read
    elif reader == "train_conversations":
        from crslab_mscrs.graphs.train_conversations import redial_raw_train

        def read(p):
            return redial_raw_train(p, {})
    else:
        from crslab_mscrs.compat.prediction_capture import rescore_replies

        def read(p):
            (tmp_path / "metrics.json").write_text("{}")
            return rescore_replies(tmp_path / "metrics.json", [])
    with pytest.raises(JsonlFormatError, match=r"test_replies.jsonl:2: malformed JSON line"):
        read(path)
