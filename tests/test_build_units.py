"""Unit tests of the dataset builder pieces, on tiny hand-made inputs (no shared data)."""
import json
from pathlib import Path

import numpy as np
import pytest

import crslab_mscrs  # noqa: F401  (compat + paths first)
from crslab_mscrs.data.build_options import BuildOptions
from crslab_mscrs.data.copy_mask import build_copy_mask, write_copy_mask
from crslab_mscrs.data.crslab_format import build_token_vocab, carve_valid, write_built_marker
from crslab_mscrs.data.entity_linking import EntityLinker, surface_name
from crslab_mscrs.data.jsonl import JsonlFormatError, read_jsonl
from crslab_mscrs.data.redial import assign_roles, build_redial
from crslab_mscrs.data.tokenize import word_tokenize
from crslab_mscrs.data.word_graph import build_concept_vocab, build_pmi_graph, read_conceptnet_csv


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "convs.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(JsonlFormatError) as err:
        read_jsonl(path)
    assert err.value.line_no == 3
    assert f"{path}:3:" in str(err.value)
    assert read_jsonl(path, limit=1) == [{"a": 1}]


def test_tokenizer_needs_no_punkt_and_splits_sentences():
    tokens = word_tokenize("Have you seen Super Troopers? It's great. I don't know...")
    assert tokens == ["Have", "you", "seen", "Super", "Troopers", "?", "It", "'s", "great", ".",
                      "I", "do", "n't", "know", "..."]


def test_surface_names_and_linking_prefers_canonical_and_skips_stop_words():
    assert surface_name("<http://dbpedia.org/resource/Tom_Hanks__1>") == ("tom hanks", None)
    assert surface_name("<http://dbpedia.org/resource/It_(novel)>") == ("it", "novel")
    assert surface_name("<http://www.imdb.com/name/nm1/>") == (None, None)
    entity2id = {f"<http://dbpedia.org/resource/{name}>": i for i, name in enumerate(
        ["Tom_Hanks", "Tom_Hanks__1", "Horror_film", "It_(novel)", "War_(2014_film)", "Drama",
         "Drama_(genre)", "The_Best_(band)", "Saving_Private_Ryan"], start=1)}
    # same name: more KG edges wins (Tom_Hanks); a name without disambiguation beats "(genre)"
    # even with fewer edges (Drama over Drama_(genre))
    linker = EntityLinker(entity2id, exclude_ids=[9], degree={1: 50, 2: 1, 7: 99})
    text = "I love Tom Hanks and horror , it is the best war drama like Saving Private Ryan"
    found = linker.link(text.split())
    assert found == ["<http://dbpedia.org/resource/Tom_Hanks>", "<http://dbpedia.org/resource/Horror_film>",
                     "<http://dbpedia.org/resource/Drama>"]
    assert linker.stats.mentions == 3 and linker.stats.texts == 1
    growing_up = {R.format("Growing_Up_(1983_film)"): 1}
    assert EntityLinker(growing_up).link("kids growing up".split()) == []
    assert EntityLinker(growing_up).link("I saw Growing Up".split()) == [R.format("Growing_Up_(1983_film)")]


def test_pmi_word_graph_keeps_top_k_positive_pairs():
    utterances = [["scary", "horror", "ghost"]] * 3 + [["funny", "comedy"]] * 3 + [["scary", "comedy"]]
    vocab = build_concept_vocab(utterances, min_count=1)
    assert min(vocab.values()) == 1  # 0 is pad_word
    graph = build_pmi_graph(utterances, vocab, top_k=5, min_pair_count=2)
    pairs = {(a, b) for _, a, b in graph.edges}
    assert ("ghost", "horror") in pairs and ("comedy", "funny") in pairs
    assert ("comedy", "scary") not in pairs  # seen once < min_pair_count
    assert graph.source == "train_pmi"


def test_conceptnet_csv_is_filtered_to_vocabulary(tmp_path):
    csv = tmp_path / "assertions.csv"
    csv.write_text("/a/1\t/r/RelatedTo\t/c/en/horror/n\t/c/en/ghost\t{}\n"
                   "/a/2\t/r/IsA\t/c/fr/horreur\t/c/en/ghost\t{}\n"
                   "/a/3\t/r/Synonym\t/c/en/comedy\t/c/en/unknownword\t{}\n", encoding="utf-8")
    graph = read_conceptnet_csv(csv, {"horror": 1, "ghost": 2, "comedy": 3})
    assert graph.edges == [("RelatedTo", "ghost", "horror")]
    bad = tmp_path / "bad.csv"
    bad.write_text("/a/1\t/r/RelatedTo\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{bad}:1"):
        read_conceptnet_csv(bad, {})


def test_roles_follow_worker_ids_and_fail_loudly():
    record = {"conversationId": "7", "initiatorWorkerId": 1, "respondentWorkerId": 2,
              "messages": [{"senderWorkerId": 2}, {"senderWorkerId": 1}, {"senderWorkerId": 1}]}
    assert assign_roles(record) == ["Recommender", "Seeker", "Seeker"]
    record["respondentWorkerId"] = None
    assert assign_roles(record) == ["Recommender", "Seeker", "Seeker"]
    record["messages"].append({"senderWorkerId": 3})
    with pytest.raises(ValueError, match="conversation 7"):
        assign_roles(record)


def test_token_vocab_specials_and_valid_carve():
    vocab = build_token_vocab([["b", "a", "b"], ["c"]])
    assert list(vocab.items())[:5] == [("__pad__", 0), ("__start__", 1), ("__end__", 2), ("__unk__", 3),
                                       ("b", 4)]
    train, valid = carve_valid(list(range(100)), 0.1, seed=3)
    assert len(valid) == 10 and len(train) == 90 and not set(train) & set(valid)
    assert carve_valid(list(range(100)), 0.1, seed=3)[1] == valid


def test_copy_mask_shape_and_marker(tmp_path):
    token2id = build_token_vocab([["Scary", "movie", "Jaws", "?"]])
    mask = build_copy_mask(token2id, {"scary": 1}, movie_title_tokens=["Jaws"])
    assert mask.dtype == bool and mask.shape == (len(token2id),)
    assert {t for t, i in token2id.items() if mask[i]} == {"Scary", "Jaws"}
    path = write_copy_mask(tmp_path, "ReDial", mask)
    assert np.array_equal(np.load(path), mask)
    assert (path.parent / ".built").read_text().split("\n")[1] == "0.2"
    assert write_built_marker(tmp_path / "x", "0.3").read_text().split("\n")[1] == "0.3"


# --- a whole (tiny, synthetic) ReDial build --------------------------------------------------

R = "<http://dbpedia.org/resource/{}>"


def _message(sender, text):
    return {"senderWorkerId": sender, "text": text}


def _write_toy_source(root: Path, train_lines=None) -> Path:
    kg = root / "redial" / "kg"
    raw = root / "redial" / "raw"
    kg.mkdir(parents=True)
    raw.mkdir(parents=True)
    entity2id = {R.format("Jaws_(film)"): 1, R.format("Alien_(film)"): 2, "300": 3,
                 R.format("Steven_Spielberg"): 4, R.format("Horror_film"): 5}
    (kg / "entity2id.json").write_text(json.dumps(entity2id))
    (kg / "dbpedia_subkg.json").write_text(json.dumps({"1": [[7, 4], [8, 5]], "2": [[8, 5]]}))
    (kg / "movie_ids.json").write_text(json.dumps([1, 2, 3]))
    movie_uris = {"100": R.format("Jaws_(film)"), "200": R.format("Alien_(film)"), "300": None}
    (kg / "id2entity.jsonl").write_text(json.dumps(movie_uris))
    (kg / "mid2name_redial.json").write_text(json.dumps({"100": "Jaws", "200": "Alien", "300": "Obscure Film"}))
    convs = []
    for i in range(4):
        convs.append({"conversationId": str(i), "initiatorWorkerId": 1, "respondentWorkerId": 2,
                      "movieMentions": {"100": "Jaws (1975)", "999": "Lost Movie (1990)"},
                      "messages": [_message(1, "hi , I like scary horror movies like @100"),
                                   _message(2, "try @200 or @300 , scary horror by Steven Spielberg"),
                                   _message(2, "or @999"),
                                   _message(1, "scary horror is great thanks")]})
    lines = train_lines or [json.dumps(c) for c in convs]
    (raw / "train_pool.jsonl").write_text("\n".join(lines) + "\n")
    (raw / "test_data.jsonl").write_text("\n".join(json.dumps(c) for c in convs[:2]) + "\n")
    return root


def test_toy_redial_build_format_roles_mentions_and_unknown_movies(tmp_path):
    source = _write_toy_source(tmp_path / "src")
    options = BuildOptions(valid_fraction=0.25, seed=1, word_min_pair_count=1, concept_min_count=1)
    report = build_redial(source, tmp_path / "data", options, echo=False)
    out = tmp_path / "data" / "dataset" / "redial" / "nltk"
    train = json.loads((out / "train_data.json").read_text())
    test = json.loads((out / "test_data.json").read_text())
    assert len(train) == 3 and len(json.loads((out / "valid_data.json").read_text())) == 1 and len(test) == 2
    dialog = test[0]["dialog"]
    assert [u["utt_id"] for u in dialog] == [0, 1, 2, 3]
    assert [u["role"] for u in dialog] == ["Seeker", "Recommender", "Recommender", "Seeker"]
    assert dialog[0]["text"][-1] == "Jaws" and dialog[0]["movies"] == [R.format("Jaws_(film)")]
    assert dialog[1]["movies"] == [R.format("Alien_(film)"), "300"]  # DBpedia-less movie: raw id
    assert dialog[1]["entity"] == [R.format("Horror_film"), R.format("Steven_Spielberg")]
    assert dialog[2]["text"] == ["or", "Lost", "Movie"] and dialog[2]["movies"] == []
    assert "scary" in dialog[0]["word"] and "hi" not in dialog[0]["word"]
    assert report.unknown_movies.mentions == 6 and dict(report.unknown_movies.ids) == {"999": 6}
    assert report.unknown_movies.examples[0]["movie_id"] == "999"
    assert report.splits["test"].recommendation_instances == 2
    assert json.loads((out / "entity2id.json").read_text())[R.format("Jaws_(film)")] == 1
    assert (out / ".built").read_text().split("\n")[1] == "0.31"
    saved = json.loads((out / "build_report.json").read_text())
    assert saved["unknown_movies"]["mentions"] == 6


def test_toy_redial_build_reports_malformed_raw_line(tmp_path):
    good = json.dumps({"conversationId": "1", "messages": []})
    source = _write_toy_source(tmp_path / "src", train_lines=[good, "{not json", good])
    with pytest.raises(JsonlFormatError, match=r"train_pool\.jsonl:2:"):
        build_redial(source, tmp_path / "data", BuildOptions(), echo=False)


def test_build_datasets_rejects_unknown_names_before_building(tmp_path):
    from crslab_mscrs.data import build_datasets

    with pytest.raises(ValueError, match="bogus"):
        build_datasets(tmp_path / "no_source", tmp_path / "data", ["redial", "bogus"])
    assert not (tmp_path / "data").exists()


def test_turn_rule_groups_consecutive_same_role_utterances():
    from crslab_mscrs.data.turns import group_by_role

    dialog = [{"role": "Seeker", "utt_id": 1}, {"role": "Seeker", "utt_id": 2},
              {"role": "Recommender", "utt_id": 3}, {"role": "Seeker", "utt_id": 4}]
    groups = group_by_role(dialog)
    assert [(role, [u["utt_id"] for u in utts]) for role, utts in groups] == [
        ("Seeker", [1, 2]), ("Recommender", [3]), ("Seeker", [4])]
    assert group_by_role([]) == []
