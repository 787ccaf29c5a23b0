"""Bring your own dataset (docs/own_data.md): the format, its errors, the generic builder and
CRSLab loading the result under the user's name."""
import json
from pathlib import Path

import numpy as np
import pytest

import crslab_mscrs  # noqa: F401  (compat + registration first)
from crslab_mscrs import paths, registry
from crslab_mscrs.data import BuildOptions
from crslab_mscrs.data.crslab_format import IncompleteBuildError
from crslab_mscrs.data.custom import CustomFormatError, build_custom, custom_dataset_dir

OPTIONS = BuildOptions(word_min_pair_count=1, concept_min_count=1)
GENRES = ["Comedy", "Drama", "Horror"]


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def tiny_dataset(folder: Path, n_items: int = 9, kg: bool = False) -> Path:
    """A small user dataset: items with metadata, three splits of two-turn conversations."""
    folder.mkdir(parents=True, exist_ok=True)
    items = [{"id": f"m{i}", "name": f"Film {i}", "year": 2000 + i % 3, "genres": [GENRES[i % 3]],
              "director": [f"Director {i % 2}"]} for i in range(n_items)]
    write_jsonl(folder / "items.jsonl", items)

    def conv(i):
        liked, rec = f"m{i % n_items}", f"m{(i + 3) % n_items}"
        return {"messages": [
            {"role": "seeker", "text": f"I enjoy scary ghost stories such as Film {i % n_items}.", "items": [liked]},
            {"role": "recommender", "text": f"Then watch Film {(i + 3) % n_items}: a spooky ghost mansion.",
             "items": [rec]},
            {"role": "seeker", "text": "Thanks, a spooky mansion with ghost stories sounds perfect!"}],
            "feedback": {rec: {"seen": 0, "liked": 1}}}

    write_jsonl(folder / "train.jsonl", [conv(i) for i in range(8)])
    write_jsonl(folder / "valid.jsonl", [conv(i) for i in range(8, 10)])
    write_jsonl(folder / "test.jsonl", [conv(i) for i in range(10, 12)])
    if kg:
        (folder / "kg.tsv").write_text("item:m0\tsequel_of\titem:m1\nitem:m2\tgenre\tComedy\n", encoding="utf-8")
    return folder


@pytest.fixture
def data_root_at():
    previous = paths.data_root()
    yield lambda root: paths.set_data_root(root)
    paths.set_data_root(previous)


def test_builds_crslab_format_with_a_kg_from_metadata_and_loads_in_crslab(tmp_path, no_download, data_root_at):
    import crslab.data as crslab_data

    source = tiny_dataset(tmp_path / "src")
    report = build_custom(source, tmp_path / "root", "TinyShop", OPTIONS, echo=False)
    out = custom_dataset_dir(tmp_path / "root", "TinyShop")
    assert out == tmp_path / "root" / "dataset" / "tinyshop" / "nltk" and (out / ".built").is_file()
    assert report.entity_kg["source"].startswith("built from the catalogue metadata")
    assert any("no kg.tsv" in note for note in report.notes)
    entity2id = json.loads((out / "entity2id.json").read_text())
    assert 0 not in entity2id.values()  # 0 is CRSLab's pad entity
    assert {"genre:Comedy", "person:Director 1", "year:2001"} <= set(entity2id)
    triples = set((out / "dbpedia_subkg.txt").read_text().splitlines())
    assert "item:m0\tgenre\tgenre:Comedy" in triples and "item:m1\tdirector\tperson:Director 1" in triples
    movie_ids = json.loads((out / "movie_ids.json").read_text())
    assert movie_ids == [entity2id[f"item:m{i}"] for i in range(9)]
    train = json.loads((out / "train_data.json").read_text())
    assert train[0]["conv_id"] == "train-0"
    assert [u["role"] for u in train[0]["dialog"]] == ["Seeker", "Recommender", "Seeker"]
    assert train[0]["dialog"][1]["movies"] == ["item:m3"]
    feedback = json.loads((out / "seeker_feedback.json").read_text())
    assert feedback["test-1"] == {str(entity2id["item:m5"]): {"seen": 0, "liked": 1}}
    assert json.loads((out / "item_id_map.json").read_text())["m4"] == entity2id["item:m4"]
    mask_dir = tmp_path / "root" / "model" / "kgsf" / "TinyShop"
    assert np.load(mask_dir / "copy_mask.npy").shape == (len(json.loads((out / "token2id.json").read_text())),)
    assert (mask_dir / ".built").read_text().splitlines()[1] == (out / ".built").read_text().splitlines()[1]
    assert not (out / ".kgsf_root").exists()

    data_root_at(tmp_path / "root")
    assert registry.register_custom_datasets(tmp_path / "root") == ["TinyShop"]
    dataset = crslab_data.get_dataset({"dataset": "TinyShop"}, "nltk", False, False)
    assert len(dataset.train_data) == 8 * 2  # one sample per turn after the first
    sample = dataset.train_data[0]
    assert sample["conv_id"] == "train-0" and sample["role"] == "Recommender"
    assert sample["items"] == [entity2id["item:m3"]]
    assert dataset.side_data["item_entity_ids"] == movie_ids
    assert crslab_data.dataset_language_map["TinyShop"] == "en"


def test_a_user_kg_file_is_used_and_its_entities_are_checked(tmp_path):
    source = tiny_dataset(tmp_path / "src", kg=True)
    report = build_custom(source, tmp_path / "root", "WithKG", OPTIONS, echo=False)
    assert report.entity_kg["source"] == "kg.tsv" and not report.notes
    triples = (custom_dataset_dir(tmp_path / "root", "WithKG") / "dbpedia_subkg.txt").read_text().splitlines()
    assert triples == ["item:m0\tsequel_of\titem:m1", "item:m2\tgenre\tComedy"]

    (source / "kg.tsv").write_text("item:m0\tsequel_of\titem:m99\n", encoding="utf-8")
    with pytest.raises(CustomFormatError, match=r"kg.tsv:1: tail 'item:m99' names no item .*edge to nowhere"):
        build_custom(source, tmp_path / "root", "WithKG", OPTIONS, echo=False)
    (source / "kg.tsv").write_text("item:m0\tsequel_of\tNowhere\n", encoding="utf-8")
    (source / "entities.txt").write_text("".join(f"item:m{i}\n" for i in range(9)), encoding="utf-8")
    with pytest.raises(CustomFormatError, match=r"kg.tsv:1: tail 'Nowhere' is not in entities.txt"):
        build_custom(source, tmp_path / "root", "WithKG", OPTIONS, echo=False)
    (source / "kg.tsv").write_text("item:m0 sequel_of item:m1\n", encoding="utf-8")
    with pytest.raises(CustomFormatError, match=r"kg.tsv:1: expected 'head<TAB>relation<TAB>tail'"):
        build_custom(source, tmp_path / "root", "WithKG", OPTIONS, echo=False)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s["train"].__setitem__(1, {"messages": [{"role": "seeker", "text": "hi", "items": ["nope"]}]}),
     r"train.jsonl:2: conversation 'train-1', messages\[0\].items: unknown item 'nope' \(not in items.jsonl\)"),
    (lambda s: s["test"].__setitem__(0, {"messages": [{"role": "bot", "text": "hi"}]}),
     r"test.jsonl:1: conversation 'test-0', messages\[0\].role is 'bot'"),
    (lambda s: s["valid"].__setitem__(0, {"messages": [{"role": "seeker", "text": "hi", "entities": ["Mars"]}]}),
     r"valid.jsonl:1: .*entities: unknown entity 'Mars' \(not in the KG\)"),
    (lambda s: s["train"][0]["messages"][0].__setitem__("entities", ["Comedy"]),
     r"train.jsonl:1: .*unknown entity 'Comedy' \(not in the KG\); did you mean \['genre:Comedy'\]\?"),
    (lambda s: s["items"][0].__setitem__("genres", ["Sci\tFi"]), r"items.jsonl:1: key 'genres': 'Sci\\tFi' contains a tab"),
    (lambda s: s["train"][0].__setitem__("feedback", {"m1": {"seen": 5}}),
     r"train.jsonl:1: conversation 'train-0': feedback\['m1'\].seen must be 0, 1 or 2"),
    (lambda s: s["train"][0]["messages"][0].__setitem__("txt", "typo"),
     r"train.jsonl:1: unknown conversation 'train-0', messages\[0\] key\(s\) \['txt'\]"),
    (lambda s: s["items"].__setitem__(2, {"id": "m0", "name": "again"}), r"items.jsonl:3: duplicate item id 'm0'"),
    (lambda s: s["items"].__setitem__(1, {"id": "m1"}), r"items.jsonl:2: item 'm1': key 'name' must be"),
])
def test_bad_input_names_file_line_and_key_and_leaves_the_previous_build(tmp_path, mutate, message):
    source = tiny_dataset(tmp_path / "src")
    build_custom(source, tmp_path / "root", "Shop", OPTIONS, echo=False)
    out = custom_dataset_dir(tmp_path / "root", "Shop")
    before = (out / "train_data.json").read_bytes()
    files = {name: [json.loads(line) for line in (source / f"{name}.jsonl").read_text().splitlines()]
             for name in ("items", "train", "valid", "test")}
    mutate(files)
    for name, rows in files.items():
        write_jsonl(source / f"{name}.jsonl", rows)
    with pytest.raises(CustomFormatError, match=message):
        build_custom(source, tmp_path / "root", "Shop", OPTIONS, echo=False)
    assert (out / ".built").is_file() and (out / "train_data.json").read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["nltk"]  # no staging folder left behind


def test_a_failed_first_build_leaves_nothing_that_looks_built(tmp_path, monkeypatch):
    from crslab_mscrs.data import inspired_layout

    source = tiny_dataset(tmp_path / "src")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(inspired_layout, "write_inspired_word_graph", broken)
    with pytest.raises(OSError, match="disk full"):
        build_custom(source, tmp_path / "root", "Shop", OPTIONS, echo=False)
    folder = tmp_path / "root" / "dataset" / "shop"
    assert not (folder / "nltk").exists() and list(folder.iterdir()) == []


def test_a_failure_at_the_last_step_keeps_the_previous_dataset_and_copy_mask(tmp_path, monkeypatch):
    from crslab_mscrs.data import inspired_layout

    source = tiny_dataset(tmp_path / "src")
    build_custom(source, tmp_path / "root", "Shop", OPTIONS, echo=False)
    out, mask = custom_dataset_dir(tmp_path / "root", "Shop"), tmp_path / "root/model/kgsf/Shop/copy_mask.npy"
    before = {path: path.read_bytes() for path in (out / "train_data.json", out / "token2id.json", mask)}
    rows = [json.loads(line) for line in (source / "train.jsonl").read_text().splitlines()]
    rows[0]["messages"][0]["text"] = "completely different words: zebra xylophone quasar"
    write_jsonl(source / "train.jsonl", rows)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(inspired_layout, "write_built_marker", broken)
    with pytest.raises(OSError, match="disk full"):
        build_custom(source, tmp_path / "root", "Shop", OPTIONS, echo=False)
    assert {path: path.read_bytes() for path in before} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["nltk"]


def test_names_and_missing_valid_split(tmp_path):
    source = tiny_dataset(tmp_path / "src")
    for bad in ("ReDial", "inspired", "9lives", "has space"):
        with pytest.raises(ValueError, match="dataset name"):
            build_custom(source, tmp_path / "root", bad, OPTIONS, echo=False)
    (source / "valid.jsonl").unlink()
    report = build_custom(source, tmp_path / "root", "Carved", BuildOptions(valid_fraction=0.25, seed=3,
                                                                             word_min_pair_count=1), echo=False)
    assert report.splits["valid"].conversations == 2 and report.splits["train"].conversations == 6
    assert report.settings["valid"].startswith("carved from train")


def test_an_unbuilt_user_dataset_says_how_to_build_it(tmp_path, data_root_at):
    import crslab.data as crslab_data

    registry.register_custom_dataset("NeverBuilt", "crslab-mscrs-custom-1")
    data_root_at(tmp_path)
    with pytest.raises(IncompleteBuildError, match=r"neverbuilt/nltk has no .built marker .*build_custom.py --source"):
        crslab_data.get_dataset({"dataset": "NeverBuilt"}, "nltk", False, False)
