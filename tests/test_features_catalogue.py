"""Item catalogue: joins, items without metadata, user files and bad inputs."""
import csv
import json
import os
from pathlib import Path

import pytest

from crslab_mscrs.features import catalogue as cat

# the raw source folder: $CRSLAB_MSCRS_SOURCE, else the Makefile's SOURCE default (<repo>/../shared/data)
SHARED = Path(os.environ.get("CRSLAB_MSCRS_SOURCE") or Path(__file__).resolve().parents[2] / "shared" / "data")

ENTITY2ID = {"<http://dbpedia.org/resource/Toy_Story>": 0,
             "<http://dbpedia.org/resource/Heat_(1995_film)>": 1,
             "<http://dbpedia.org/resource/Tom_Hanks>": 2,
             "77777": 3}
ITEMS = [0, 1, 3]


def _write_redial_files(tmp_path):
    id2entity = {"10": "<http://dbpedia.org/resource/Toy_Story>", "11": "<http://dbpedia.org/resource/Heat_(1995_film)>",
                 "77777": None}
    (tmp_path / "id2entity.json").write_text(json.dumps(id2entity))
    rows = [{"redial_id": "10", "redial_name": "Toy Story (1995)", "nbMentions": "5", "imdb_id": "tt0114709",
             "genres": "animation|comedy", "director": "John Lasseter", "stars": "Tom Hanks|Tim Allen",
             "plot": "Toys come alive.", "poster": ""},
            {"redial_id": "77777", "redial_name": "Obscure Film  (2001)", "nbMentions": "1", "imdb_id": "",
             "genres": "", "director": "", "stars": "", "plot": "", "poster": ""}]
    with open(tmp_path / "meta.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    posters = tmp_path / "posters"
    posters.mkdir()
    (posters / "tt0114709.jpg").write_bytes(b"not read here")
    return tmp_path / "id2entity.json", tmp_path / "meta.csv", posters


def test_redial_join_keeps_items_without_metadata(tmp_path):
    id2entity, meta, posters = _write_redial_files(tmp_path)
    catalogue = cat.build_redial_catalogue(ENTITY2ID, ITEMS, id2entity, meta, posters_dir=posters)
    assert catalogue.item_ids == [0, 1, 3]
    toy = catalogue[0]
    assert (toy.title, toy.year, toy.genres, toy.stars) == ("Toy Story", 1995, ["animation", "comedy"],
                                                            ["Tom Hanks", "Tim Allen"])
    assert toy.image_paths == [str(posters / "tt0114709.jpg")]
    heat = catalogue[1]  # no metadata row at all: title and year from the URI
    assert (heat.title, heat.year, heat.metadata_source, heat.image_paths) == ("Heat", 1995, "uri-only", [])
    obscure = catalogue[3]  # unlinked ReDial movie: its URI is the movieId
    assert (obscure.title, obscure.year, obscure.metadata_source) == ("Obscure Film", 2001, "redial-name")
    assert catalogue.coverage() == {"items": 3, "with_metadata": 1, "with_plot": 1, "with_images": 1, "uri_only": 1}


def test_item_ids_must_exist_in_entity2id():
    with pytest.raises(ValueError, match="not in entity2id"):
        cat.load_item_ids([0, 99], ENTITY2ID)


def test_user_catalogue_csv_and_missing_column(tmp_path):
    good = tmp_path / "items.csv"
    good.write_text("uri,title,genres,images\n<http://dbpedia.org/resource/Toy_Story>,Toy Story (1995),a|b,img/x.jpg\n")
    catalogue = cat.load_user_catalogue(good, ENTITY2ID, ITEMS)
    assert len(catalogue) == 3 and catalogue[0].year == 1995 and catalogue[0].genres == ["a", "b"]
    assert catalogue[0].image_paths == [str(tmp_path / "img/x.jpg")]
    assert catalogue[1].title == "Heat"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,plot\nx,y\n")
    with pytest.raises(ValueError, match="missing column 'item_id' or 'uri'"):
        cat.load_user_catalogue(bad, ENTITY2ID, ITEMS)


def test_user_catalogue_unknown_entity_names_the_line(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"uri": "<http://dbpedia.org/resource/Toy_Story>"}) + "\n"
                    + json.dumps({"uri": "<http://nowhere/X>"}) + "\n")
    with pytest.raises(ValueError, match=r"items.jsonl:2: unknown entity"):
        cat.load_user_catalogue(path, ENTITY2ID, ITEMS)
    path.write_text(json.dumps({"item_id": 2}) + "\n")  # Tom Hanks is an entity but not an item
    with pytest.raises(ValueError, match="not a recommendable item"):
        cat.load_user_catalogue(path, ENTITY2ID, ITEMS)


def test_title_parsing():
    assert cat.title_from_uri("<http://dbpedia.org/resource/The_Matrix>") == ("The Matrix", None)
    assert cat.title_from_uri("<http://dbpedia.org/resource/Frozen_(2013_film)>") == ("Frozen", 2013)
    assert cat.split_title_year("Scarface  (1983)") == ("Scarface", 1983)


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"raw source data not found at {SHARED}")
def test_real_redial_and_inspired_catalogues():
    redial = cat.build_redial_catalogue(SHARED / "redial/kg/entity2id.json", SHARED / "redial/kg/movie_ids.json",
                                        SHARED / "redial/kg/id2entity.jsonl", SHARED / "redial/items/item_metadata.csv",
                                        SHARED / "redial/items/id2info.json", posters_dir=SHARED / "posters")
    cov = redial.coverage()
    assert cov["items"] == 6924 and cov["with_images"] == 1787 and cov["with_metadata"] > 6000
    inspired = cat.build_inspired_catalogue(SHARED / "inspired/kg/entity2id.json",
                                            SHARED / "inspired/kg/item_ids.json",
                                            SHARED / "inspired/items/item_mapping_guess.csv",
                                            SHARED / "inspired/items/spiderMovieInfo.txt", posters_dir=SHARED / "posters")
    assert len(inspired) == 1123 and 0 < inspired.coverage()["with_images"] <= 480
    assert inspired.find_by_title("Joker")[0].plot.startswith("Joker is a 2019")
