"""``item_names.json`` written by the builders: entity id -> movie name, read by the MSCRS dataloader."""
import json
from collections import Counter
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401  (compat + path redirection first)
from crslab_mscrs.data import BuildOptions, build_inspired, build_redial
from crslab_mscrs.data.item_names import (ITEM_NAMES_FILE, clean_name, inspired_named_entities,
                                          redial_named_entities, write_item_names)
from crslab_mscrs.batches.dataloader import load_item_names

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
R = "<http://dbpedia.org/resource/{}>"


def test_clean_name_drops_year_and_extra_spaces():
    assert clean_name("Headhunter  (2009)") == "Headhunter"
    assert clean_name("  Rio ( 2011 ) ") == "Rio"
    assert clean_name("Blade Runner 2049") == "Blade Runner 2049"
    assert clean_name(" (2015)") == "" and clean_name(None) == ""


def test_redial_names_prefer_mid2name_then_metadata_and_key_raw_ids(tmp_path):
    csv_path = tmp_path / "item_metadata.csv"
    csv_path.write_text("redial_id,redial_name,ml_title\n"
                        "1,Jaws  (1975),Jaws (1975)\n"
                        "2,Alien  (1979),Alien (1979)\n"
                        "3, (2015),Love (2015)\n"
                        "4, (2000),\n")
    movie_entity = {"1": R.format("Jaws"), "2": R.format("Alien"), "3": "3", "4": "4", "5": None}
    mid2name = {"1": "Jaws!", "2": "", "3": "", "4": "", "5": "Nowhere"}
    named = redial_named_entities(movie_entity, mid2name, csv_path)
    assert named == {R.format("Jaws"): ("Jaws!", "mid2name_redial"),
                     R.format("Alien"): ("Alien", "item_metadata.redial_name"),
                     "3": ("Love", "item_metadata.ml_title")}
    assert redial_named_entities(movie_entity, mid2name, None) == {R.format("Jaws"): ("Jaws!", "mid2name_redial")}


def test_inspired_names_take_most_frequent_spelling_then_mapping_csv(tmp_path):
    csv_path = tmp_path / "item_mapping_guess.csv"
    csv_path.write_text("inspired_movie_name,dbpedia_link\nJoker,<J>\nIt,<It>\n")
    spellings = {"<J>": Counter({"joker": 1, "Joker": 3}), "<S>": Counter({"Star Wars": 2, "star wars": 2})}
    named = inspired_named_entities(spellings, csv_path)
    assert named["<J>"] == ("Joker", "dialogue movie_name")
    assert named["<S>"] == ("Star Wars", "dialogue movie_name")  # tie: first seen
    assert named["<It>"] == ("It", "item_mapping_guess.inspired_movie_name")


def test_write_item_names_keeps_only_items_and_reports_coverage(tmp_path):
    entity2id = {"<A>": 1, "<B>": 2, "<C>": 3, "<Genre>": 4}
    named = {"<A>": ("A", "s1"), "<B>": ("B", "s2"), "<Genre>": ("Drama", "s1")}
    coverage = write_item_names(tmp_path, named, entity2id, item_ids=[3, 2, 1])
    assert coverage["items"] == 3 and coverage["named"] == 2 and coverage["unnamed_examples"] == ["<C>"]
    assert coverage["sources"] == {"s1": 1, "s2": 1}
    assert json.loads((tmp_path / ITEM_NAMES_FILE).read_text()) == {"1": "A", "2": "B"}
    assert load_item_names({"item_names_file": str(tmp_path / ITEM_NAMES_FILE)}) == {1: "A", 2: "B"}


def test_toy_redial_build_writes_names_by_entity_id(tmp_path):
    from test_build_units import _write_toy_source

    source = _write_toy_source(tmp_path / "src")
    options = BuildOptions(valid_fraction=0.25, seed=1, word_min_pair_count=1, concept_min_count=1)
    report = build_redial(source, tmp_path / "data", options, echo=False)
    out = tmp_path / "data" / "dataset" / "redial" / "nltk"
    entity2id = json.loads((out / "entity2id.json").read_text())
    names = load_item_names({"item_names_file": str(out / ITEM_NAMES_FILE)})
    assert names == {entity2id[R.format("Jaws_(film)")]: "Jaws", entity2id[R.format("Alien_(film)")]: "Alien",
                     entity2id["300"]: "Obscure Film"}  # DBpedia-less movie: keyed by its raw-id entity
    assert report.item_names["named"] == report.item_names["items"] == 3
    assert json.loads((out / "build_report.json").read_text())["item_names"]["named"] == 3


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")
def test_real_builds_name_every_item_as_the_text_spells_it(tmp_path):
    report = build_redial(SHARED, tmp_path, BuildOptions(limit=10), echo=False)
    out = tmp_path / "dataset" / "redial" / "nltk"
    names = load_item_names({"item_names_file": str(out / ITEM_NAMES_FILE)})
    entity2id = json.loads((out / "entity2id.json").read_text())
    mid2name = json.loads((SHARED / "redial/kg/mid2name_redial.json").read_text())
    assert set(names) <= set(json.loads((out / "movie_ids.json").read_text()))
    assert report.item_names["items"] == 6924 and report.item_names["named"] >= 6900
    raw_id_movies = [m for m in mid2name if m in entity2id and mid2name[m]]
    assert len(raw_id_movies) > 700 and all(names[entity2id[m]] == clean_name(mid2name[m]) for m in raw_id_movies)

    report = build_inspired(SHARED, tmp_path, BuildOptions(limit=10), echo=False)
    out = tmp_path / "dataset" / "inspired" / "nltk"
    names = load_item_names({"item_names_file": str(out / ITEM_NAMES_FILE)})
    entity2id = json.loads((out / "entity2id.json").read_text())
    first = json.loads((SHARED / "inspired/raw/test_data_dbpedia.jsonl").read_text().splitlines()[0])
    mentioned = {uri: name for turn in first for uri, name in zip(turn["movie_link"], turn["movie_name"])}
    assert mentioned and all(names[entity2id[uri]] == name for uri, name in mentioned.items())
    assert report.item_names["named"] >= 0.95 * report.item_names["items"]
