"""One entity linker (crslab_mscrs.data.entity_linking) for the dataset builder and for
interactive mode: a user's text gets the entities training saw on the same text."""
import json
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401
from crslab_mscrs.data.entity_linking import kg_linker
from crslab_mscrs.data.item_names import ItemNames
from crslab_mscrs.data.tokenize import word_tokenize
from crslab_mscrs.training.chat import UserLinker

R = "<http://dbpedia.org/resource/{}>"
REDIAL = Path(__file__).resolve().parents[1] / "data" / "dataset" / "redial" / "nltk"


def toy_kg():
    entity2id = {R.format("Red_River_(film)"): 1, R.format("Red_River"): 7, R.format("Horror_film"): 9,
                 R.format("It_(2017_film)"): 4, R.format("Tom_Hanks"): 5}
    return entity2id, [1, 4], {"5": [[0, 1]]}


def test_a_typed_line_links_movies_by_name_and_entities_as_the_builder_does():
    entity2id, items, subkg = toy_kg()
    names = ItemNames({}, {v: k for k, v in entity2id.items()})
    linker = UserLinker(entity2id, items, names, subkg)
    text = "I loved Red River with Tom Hanks, any horror film?"
    builder = kg_linker(entity2id, items, subkg)  # as data/redial.py builds it
    expected_entities = [entity2id[uri] for uri in builder.link(word_tokenize(text))]
    assert expected_entities == [7, 5, 9]  # longest names first; movies are not KG-linked
    assert linker.link(text) == [1] + expected_entities  # the typed movie first, like an @id mention
    assert linker.link("it was fine") == []  # too short / a stop word, never "It (2017)"


@pytest.mark.realdata
@pytest.mark.skipif(not (REDIAL / "train_data.json").is_file(), reason="ReDial not built in ./data (run `make data`)")
def test_interactive_linking_equals_training_linking_on_real_redial_messages():
    """Every built ReDial train message without a movie mention, typed as text, links to the
    entities the builder stored for it (measured: 21843 of 21843 messages)."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    entity2id = json.loads((REDIAL / "entity2id.json").read_text())
    movie_ids = json.loads((REDIAL / "movie_ids.json").read_text())
    subkg = json.loads((REDIAL / "dbpedia_subkg.json").read_text())
    names = ItemNames.load(REDIAL / "item_names.json", {v: k for k, v in entity2id.items()})
    linker = UserLinker(entity2id, movie_ids, names, subkg)
    detokenize = TreebankWordDetokenizer().detokenize
    messages = [utt for conv in json.loads((REDIAL / "train_data.json").read_text()) for utt in conv["dialog"]
                if not utt["movies"]]
    linked = [linker.parts(detokenize(utt["text"]))[1] for utt in messages]
    differ = [(utt["text"], found, utt["entity"]) for utt, found in zip(messages, linked)
              if found != [entity2id[uri] for uri in utt["entity"]]]
    assert len(messages) > 1000 and differ == []
    # and a typed title finds its movie: entity 50303 (Black Panther, ReDial id 204974, no DBpedia page)
    assert 50303 in linker.link("have you seen Black Panther?")
