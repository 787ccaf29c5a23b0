"""CRSLab wrappers MSCRSModel / UniCRSModel: registry, construction from opt, forward dispatch."""
import pytest
import torch

from crslab_mscrs.model.mscrs import MSCRSModel, UniCRSModel, register
from crslab_mscrs.model.prompt_crs import ConvOutput, RecOutput
from crslab_mscrs.model.tiny import (single_thread, tiny_batch, tiny_opt, tiny_side_data, tiny_vocab,
                                     write_tiny_graph_files)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


def test_register_adds_both_models():
    from crslab.model import Model_register_table

    register()
    assert Model_register_table["MSCRS"] is MSCRSModel
    assert Model_register_table["UniCRS"] is UniCRSModel


def test_forward_dispatch_and_crslab_api(tmp_path):
    folder = write_tiny_graph_files(tmp_path)
    torch.manual_seed(0)
    model = MSCRSModel(tiny_opt(folder, lm="tiny-random-llama"), "cpu", tiny_vocab(), tiny_side_data())
    crs = model.crs
    assert all(crs.entity_encoder.uses_graphs.values())
    table = model.entity_table()
    rec = model(tiny_batch(crs.lm_tokenizer, crs.text_tokenizer, "rec"), "rec", entity_table=table)
    assert isinstance(rec, RecOutput) and rec.item_scores.shape == (2, 5)
    assert isinstance(model(tiny_batch(crs.lm_tokenizer, crs.text_tokenizer, "pretrain"), "pretrain"), RecOutput)
    conv = model.converse(tiny_batch(crs.lm_tokenizer, crs.text_tokenizer, "conv"), "train")
    assert isinstance(conv, ConvOutput) and torch.isfinite(conv.loss)
    tokens = model(tiny_batch(crs.lm_tokenizer, crs.text_tokenizer, "generate"), "generate", max_new_tokens=3)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 3
    assert torch.equal(model.item_ids, torch.tensor(tiny_side_data()["item_entity_ids"]))
    with pytest.raises(ValueError, match="mode"):
        model({}, "policy")


def test_missing_graph_file_names_file_and_key(tmp_path):
    folder = write_tiny_graph_files(tmp_path)
    (folder / "image_knn_graph.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"image_knn_graph\.pt.*use_image_graph"):
        MSCRSModel(tiny_opt(folder), "cpu", tiny_vocab(), tiny_side_data())
    # switching the graph off (or UniCRS) needs no file
    MSCRSModel(tiny_opt(folder, use_image_graph=False), "cpu", tiny_vocab(), tiny_side_data())
    UniCRSModel(tiny_opt(tmp_path / "does-not-exist"), "cpu", tiny_vocab(), tiny_side_data())


def test_missing_required_key():
    opt = tiny_opt(None)
    del opt["lm"]
    with pytest.raises(KeyError, match="lm"):
        UniCRSModel(opt, "cpu", tiny_vocab(), tiny_side_data())
