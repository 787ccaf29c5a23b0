"""One item-name resolver (crslab_mscrs.data.item_names.ItemNames) for movie-mention masking,
``<movie>`` slot filling, interactive listings and re-scored reports."""
import json
from pathlib import Path

import pytest

from crslab_mscrs.data.item_names import ItemNames
from crslab_mscrs.training.generation import fill_reply, refill_replies

REPO = Path(__file__).resolve().parents[1]
REDIAL = REPO / "data" / "dataset" / "redial" / "nltk"
R = "<http://dbpedia.org/resource/{}>"


def test_names_come_from_the_file_then_the_dbpedia_title_never_a_bare_id_when_named():
    names = ItemNames({2: "Black Panther"}, {1: R.format("Rio_(2011_film)"), 2: "204974", 3: "204975"})
    assert names.name(1) == "Rio" and names.label(1) == "Rio (2011)"
    assert names.name(2) == names.label(2) == "Black Panther"
    assert names.name(3) == "204975" and not names.has_name(3)  # nothing names it: its key is all there is
    filled = fill_reply("Have you seen <movie> or <movie>?", [2, 1], names, "<movie>")
    assert filled["reply"] == "Have you seen Black Panther or Rio?" and filled["n_slots"] == 2


def test_stored_rows_are_refilled_from_raw_and_top_items():
    names = ItemNames({50303: "Black Panther"}, {50303: "204974"})
    row = {"raw": "Have you seen <movie>?", "reply": "Have you seen 204974?", "n_slots": 1, "top_items": [50303],
           "reference": "x"}
    too_many = dict(row, raw="<movie> <movie>", n_slots=2)
    rows, changed, kept = refill_replies([row, too_many], names, "<movie>")
    assert rows[0]["reply"] == "Have you seen Black Panther?" and rows[1] == too_many and (changed, kept) == (1, 1)


@pytest.mark.realdata
@pytest.mark.skipif(not (REDIAL / "item_names.json").is_file(), reason="ReDial not built in ./data (run `make data`)")
def test_no_real_redial_item_is_shown_as_a_bare_id_where_a_name_exists():
    entity2id = json.loads((REDIAL / "entity2id.json").read_text())
    movie_ids = json.loads((REDIAL / "movie_ids.json").read_text())
    named = {int(k) for k in json.loads((REDIAL / "item_names.json").read_text())}
    id2entity = {v: k for k, v in entity2id.items()}
    names = ItemNames.load(REDIAL / "item_names.json", id2entity)
    bare = [i for i in movie_ids if not id2entity[i].startswith("<http")]
    assert len(bare) > 800  # ReDial movies without a DBpedia page: keyed by their raw movieId
    for item in movie_ids:
        if item in named or id2entity[item].startswith("<http"):
            for shown in (names.name(item), names.label(item)):
                assert shown != id2entity[item], (item, shown)
    assert names.name(50303) == "Black Panther"  # ReDial 204974
    # the stored ReDial replies of benchmarks/evidence (re-filled by data_prep/rescore_replies.py --refill)
    stored = sorted((REPO / "benchmarks" / "evidence").glob("h200_*/test_replies_*redial*first40.jsonl"))
    assert len(stored) == 2
    for path in stored:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            assert row == refill_replies([row], names, "<movie>")[0][0], (path.name, row["reply"])
            for item in row["top_items"][:row["n_slots"]]:
                assert id2entity[item] not in row["reply"] or names.name(item) in row["reply"], (path.name, row)

