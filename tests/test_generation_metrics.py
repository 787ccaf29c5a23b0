"""Generation metrics on hand-made examples whose answers are worked out in the comments."""
import math

import numpy as np
import pytest

from crslab_mscrs.evaluation import generation as gen

CAT = "the cat sat on the mat".split()


def test_tokenize_needs_no_nltk_data(monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [])  # no punkt or anything else reachable
    assert gen.tokenize("Don't miss @123!") == ["Don't", "miss", "@123", "!"]
    assert gen.tokenize("Hello, World", lowercase=True) == ["hello", ",", "world"]
    scores = gen.corpus_generation_metrics([gen.tokenize("a b")], [[gen.tokenize("a b")]])
    assert scores["bleu@1"] == 1.0


def test_distinct_both_conventions_on_word_ngrams():
    replies = [["a", "b", "a", "b"], ["a", "c"]]
    # unigrams: {a, b, c} = 3 distinct out of 6, over 2 replies
    uni = gen.distinct(replies, 1)
    assert (uni["distinct_ngrams"], uni["total_ngrams"], uni["num_replies"]) == (3, 6, 2)
    assert uni["dist_per_reply"] == pytest.approx(1.5) and uni["dist_ratio"] == pytest.approx(0.5)
    # bigrams: ab, ba, ab | ac -> {ab, ba, ac} = 3 distinct out of 4
    bi = gen.distinct(replies, 2)
    assert bi["dist_per_reply"] == pytest.approx(1.5) and bi["dist_ratio"] == pytest.approx(0.75)
    # trigrams: aba, bab | (none) -> 2 of 2
    tri = gen.distinct(replies, 3)
    assert tri["dist_per_reply"] == pytest.approx(1.0) and tri["dist_ratio"] == pytest.approx(1.0)
    # words, not characters: "hello hello" has ONE distinct unigram (characters would give 5)
    assert gen.distinct([gen.tokenize("hello hello")], 1)["distinct_ngrams"] == 1
    assert gen.distinct([["a"]], 2)["dist_ratio"] == 0.0  # no bigram at all
    with pytest.raises(ValueError):
        gen.distinct([], 1)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_identical_and_disjoint(n):
    assert gen.bleu(CAT, [CAT], n) == pytest.approx(1.0)
    assert gen.bleu(CAT, [CAT], n, cumulative=True) == pytest.approx(1.0)
    assert gen.bleu(CAT, [["a", "dog", "ran", "off", "far", "away"]], n) == 0.0


def test_bleu_partial_match_by_hand():
    reference = "the cat is on the mat".split()
    # unigrams: the x2, cat, on, mat match (sat does not) -> 5/6; same length, BP = 1
    assert gen.bleu(CAT, [reference], 1) == pytest.approx(5 / 6)
    # bigrams: "the cat", "on the", "the mat" of 5 -> 3/5
    assert gen.bleu(CAT, [reference], 2) == pytest.approx(3 / 5)
    assert gen.bleu(CAT, [reference], 2, cumulative=True) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    # brevity penalty: 2 of 6 tokens -> exp(1 - 6/2)
    assert gen.bleu(["the", "cat"], [CAT], 1) == pytest.approx(math.exp(-2))
    assert gen.bleu(["the", "cat"], [CAT], 3) == 0.0  # no trigram to match
    assert gen.bleu([], [CAT], 1) == 0.0


def test_rouge_on_lins_example():
    reference = "police killed the gunman".split()
    s1 = "police kill the gunman".split()
    s2 = "the gunman kill police".split()
    # LCS(s1, ref) = police the gunman = 3 -> P = R = 3/4; LCS(s2, ref) = the gunman = 2
    assert gen.rouge_l(s1, [reference]) == pytest.approx(0.75)
    assert gen.rouge_l(s2, [reference]) == pytest.approx(0.5)
    assert gen.rouge_n(s1, [reference], 1) == pytest.approx(0.75)
    # bigrams of s1: police-kill, kill-the, the-gunman; only the-gunman matches -> 1/3
    assert gen.rouge_n(s1, [reference], 2) == pytest.approx(1 / 3)
    assert gen.rouge_l(s2, [["x"], reference]) == pytest.approx(0.5)  # best reference counts
    assert gen.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert gen.rouge_l([], [reference]) == 0.0


def test_perplexity_from_summed_nll():
    assert gen.perplexity(4 * math.log(2), 4) == pytest.approx(2.0)  # p = 1/2 per token
    assert gen.perplexity(0.0, 10) == 1.0
    with pytest.raises(ValueError):
        gen.perplexity(1.0, 0)


def test_item_ratio():
    replies = [["watch", "@123"], ["hi"], ["try", "__item__"]]
    assert gen.item_ratio(replies) == pytest.approx(2 / 3)
    assert gen.item_ratio(replies, is_item_token=lambda token: token == "hi") == pytest.approx(1 / 3)


def test_embedding_metrics_are_na_without_vectors():
    assert gen.embedding_metrics(CAT, [CAT], None) is None
    assert gen.greedy_matching(CAT, [CAT], None) is None
    assert gen.embedding_average(CAT, [CAT], None) is None
    assert gen.vector_extrema(CAT, [CAT], None) is None
    scores = gen.corpus_generation_metrics([CAT], [[CAT]])
    assert scores["greedy"] is None and scores["average"] is None and scores["extreme"] is None


def test_embedding_metrics_with_hand_made_vectors():
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, -3.0], "d": [2.0, 1.0]}

    def lookup(word):
        return np.array(table[word]) if word in table else None

    assert gen.embedding_metrics(["a"], [["a"]], lookup) == pytest.approx(
        {"greedy": 1.0, "average": 1.0, "extreme": 1.0})
    assert gen.embedding_metrics(["a"], [["b"]], lookup) == pytest.approx(
        {"greedy": 0.0, "average": 0.0, "extreme": 0.0})
    # greedy: a->a 1, b->a 0 (mean .5); a->{a,b} 1; (0.5 + 1) / 2
    assert gen.greedy_matching(["a", "b"], [["a"]], lookup) == pytest.approx(0.75)
    # average: mean(a, b) = (.5, .5) against (1, 0) -> cos 45 degrees
    assert gen.embedding_average(["a", "b"], [["a"]], lookup) == pytest.approx(math.sqrt(0.5))
    # extrema of c, d per dimension by magnitude: (2, -3); against a = (1, 0): 2 / sqrt(13)
    assert gen.vector_extrema(["c", "d"], [["a"]], lookup) == pytest.approx(2 / math.sqrt(13))
    assert gen.vector_extrema(["c", "d"], [["unknown"]], lookup) == 0.0  # reference has no vector
    scores = gen.corpus_generation_metrics([["a"], ["a"]], [[["a"]], [["b"]]], lookup=lookup)
    assert scores["greedy"] == pytest.approx(0.5)


def test_corpus_metrics_keys_and_values():
    hyps = [["i", "like", "@1"], ["i", "like", "it"]]
    refs = [[["i", "like", "@1"]], [["you", "like", "it"]]]
    scores = gen.corpus_generation_metrics(hyps, refs)
    assert scores["dist@1"] == pytest.approx(4 / 2)  # {i, like, @1, it} / 2 replies
    assert scores["dist_ratio@1"] == pytest.approx(4 / 6)
    assert scores["item_ratio"] == pytest.approx(0.5)
    assert scores["rouge@1"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["bleu@1"] == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError):
        gen.corpus_generation_metrics(hyps, refs[:1])


def test_fasttext_vectors_loaded_only_when_package_and_file_exist(tmp_path, monkeypatch):
    from crslab_mscrs.evaluation import embedding

    lookup, reason = embedding.load_fasttext_vectors("en", tmp_path)
    if embedding.real_fasttext_module() is None:
        assert lookup is None and "not installed" in reason

    class FakeFastTextPackage:  # a test double for the fasttext package, not vectors for metrics
        @staticmethod
        def load_model(path):
            class Model:
                def get_word_vector(self, word):
                    return np.array([len(word), 1.0])
            return Model()

    monkeypatch.setattr(embedding, "real_fasttext_module", lambda: FakeFastTextPackage)
    lookup, reason = embedding.load_fasttext_vectors("en", tmp_path)
    assert lookup is None and "no fastText vectors at" in reason
    path = embedding.fasttext_model_path("en", tmp_path)
    assert path == tmp_path / "en" / "cc.en.300.bin"
    path.parent.mkdir()
    path.write_bytes(b"")
    lookup, reason = embedding.load_fasttext_vectors("en", tmp_path)
    assert lookup is not None and lookup("abc").tolist() == [3.0, 1.0]


def test_item_name_matcher_finds_catalogue_names_and_placeholders():
    """``item_ratio`` of word-level generators (KBRD, KGSF): a reply recommends when it names a
    catalogue item or holds a placeholder; one-word titles need a capital letter."""
    from crslab_mscrs.evaluation.item_mentions import ItemNameMatcher

    matcher = ItemNameMatcher(["The Dark Knight", "Her", "Frozen", "Rio"])
    assert matcher.mentions_item("you should see the dark knight !")
    assert matcher.mentions_item("I think you would love Her .")
    assert not matcher.mentions_item("i think you would love her .")
    assert not matcher.mentions_item("the lake was frozen")
    assert matcher.mentions_item("try __item__ or @1234")
    assert not matcher.mentions_item("the dark night was long")
    assert matcher.recommended(["Frozen is great", "no idea"]) == [True, False]


def test_crslab_structure_tokens_do_not_count_as_words(tmp_path):
    """KBRD/KGSF replies and references decoded by CRSLab keep ``__start__``; a reply of
    nothing but that token must not share a unigram with the reference."""
    import json

    import pytest

    from crslab_mscrs.compat.prediction_capture import rescore_replies

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"dataset": "Inspired", "crslab_test_metrics": {"hit@10": 0.1}}))
    replies = [{"reply": "__start__ __start__ __start__", "reference": "__start__ hello there"},
               {"reply": "__start__ try Frozen __end__", "reference": "__start__ try Frozen"}]
    (tmp_path / "test_replies.jsonl").write_text("\n".join(json.dumps(r) for r in replies) + "\n")
    generation = rescore_replies(metrics, ["Frozen"])
    assert generation["n_replies"] == 2 and generation["item_ratio"] == 0.5
    assert generation["rouge@1"] == pytest.approx(0.5)  # only the second reply overlaps, fully
    written = json.loads(metrics.read_text())
    assert written["stages"]["conv"]["test"]["generation"] == generation
    assert written["crslab_test_metrics"] == {"hit@10": 0.1}
    (tmp_path / "test_replies.jsonl").write_text('{"reply": "ok", "reference": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"test_replies\.jsonl:2: malformed JSON"):
        rescore_replies(metrics, [])


PAPER_PREDICTIONS = ["I like Heat", "", "you should see <movie>"]
PAPER_REFERENCES = ["I like it", "ok", "you should see Heat"]


def test_paper_conventions_by_hand_unicrs_script():
    """UniCRS src/evaluate_conv.py: whitespace tokens, case kept, unsmoothed BLEU of one order,
    sums over all replies divided by the non-empty ones (here 2 of 3)."""
    scores = gen.paper_convention_metrics(PAPER_PREDICTIONS, PAPER_REFERENCES)
    assert scores.sent_cnt == 2 and not scores.system_prefix
    # reply 1: 2/3 unigrams, 1/2 bigrams, no trigram match; reply 3: 3/4, 2/3, 1/2, no 4-gram match
    assert scores.bleu == pytest.approx((17 / 24, 7 / 12, 1 / 4, 0.0), abs=1e-12)
    # distinct n-grams over every reply: 7, 5, 3, 1 (case kept, "<movie>" one token), over 2 replies
    assert scores.dist == pytest.approx((3.5, 2.5, 1.5, 0.5))
    assert scores.item_ratio == 0.5  # one <movie> slot per counted reply
    assert gen.paper_convention_metrics(["like heat"], ["Like Heat"]).bleu[0] == 0.0  # case kept
    assert gen.paper_convention_metrics(["", " "], ["a", "b"]).sent_cnt == 0


def test_paper_conventions_with_the_mscrs_system_prefix_by_hand():
    """MSCRS prepends "System: " to prediction and reference: the empty reply now counts and
    earns the prefix's unigram with brevity penalty exp(1 - 2/1)."""
    scores = gen.paper_convention_metrics(PAPER_PREDICTIONS, PAPER_REFERENCES, system_prefix=True)
    assert scores.sent_cnt == 3 and scores.system_prefix
    expected = ((3 / 4 + math.exp(-1) + 4 / 5) / 3, (2 / 3 + 3 / 4) / 3, (1 / 2 + 2 / 3) / 3, (1 / 2) / 3)
    assert scores.bleu == pytest.approx(expected, abs=1e-12)
    assert scores.dist[0] == pytest.approx(8 / 3)
    # filled replies: the slot counts come from the replies before filling
    filled = gen.paper_convention_metrics(["see Heat"], ["see Heat"], slot_counts=[1])
    assert filled.item_ratio == 1.0 and filled.as_dict()["bleu@2"] == pytest.approx(1.0)


def test_generation_report_carries_both_blocks_from_the_same_replies():
    from crslab_mscrs.training.outputs import generation_metrics

    report = generation_metrics(PAPER_PREDICTIONS, PAPER_REFERENCES, [False, False, True], None, None,
                                slot_counts=[0, 0, 1], system_prefix=True)
    ours, paper = report, report["paper_conventions"]
    assert ours["n_replies"] == 3 and paper["sent_cnt"] == 3 and paper["system_prefix"] == 1.0
    assert ours["bleu@1"] != paper["bleu@1"]  # lower-cased regex tokens + smoothing vs the papers' way
    assert paper["dist@1"] == pytest.approx(8 / 3)
