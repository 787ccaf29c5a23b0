"""PromptCRS on tiny random models: shapes, masking, ablations, training, determinism, generation."""
import io
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from crslab_mscrs.model.entity_rows import EntityRows
from crslab_mscrs.model.prompt_crs import PromptCRS
from crslab_mscrs.model.tiny import (TINY_ITEM_IDS, TINY_N_ENTITY, single_thread, tiny_batch, tiny_opt,
                                     tiny_side_data, tiny_vocab, write_tiny_graph_files)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


LMS = ["tiny-random-gpt2", "tiny-random-llama"]


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    return write_tiny_graph_files(tmp_path_factory.mktemp("features"))


def build(features_dir, seed=0, **overrides):
    torch.manual_seed(seed)
    return PromptCRS.from_opt(tiny_opt(features_dir, **overrides), tiny_vocab(), tiny_side_data())


def batch_for(model, task, **kwargs):
    return tiny_batch(model.lm_tokenizer, model.text_tokenizer, task, **kwargs)


@pytest.fixture(scope="module", params=LMS)
def model(request, features_dir):
    return build(features_dir, lm=request.param).eval()


def test_shapes_and_frozen_parts(model):
    rec = model.recommend(batch_for(model, "rec"))
    assert rec.item_scores.shape == (2, len(TINY_ITEM_IDS)) and rec.loss.ndim == 0
    assert rec.entity_scores is None  # rec scores the items only
    pre = model.pretrain(batch_for(model, "pretrain", labels=[7, 2]))
    assert pre.entity_scores.shape == (2, TINY_N_ENTITY) and torch.isfinite(pre.loss)
    conv_batch = batch_for(model, "conv")
    conv = model.converse({k: v for k, v in conv_batch.items() if k != "labels"})
    assert conv.logits.shape == (*conv_batch["input_ids"].shape, len(model.lm_tokenizer)) and conv.loss is None
    assert not any(p.requires_grad for p in model.lm.parameters())
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    model.train()
    assert not model.lm.training and not model.text_encoder.training and model.prompt_encoder.training
    model.eval()


@torch.no_grad()
def test_padding_entities_and_tokens_change_nothing(model):
    """Bug 5: padded entities / prompt tokens / LM tokens are masked everywhere."""
    for task, method in (("rec", model.recommend), ("conv", model.converse)):
        batch = batch_for(model, task)
        base = method(batch)
        padded = dict(batch)
        extra = 3
        padded["entity_ids"] = F.pad(batch["entity_ids"], (0, extra), value=0)
        padded["entity_mask"] = F.pad(batch["entity_mask"], (0, extra), value=False)
        padded["prompt_input_ids"] = F.pad(batch["prompt_input_ids"], (0, extra),
                                           value=model.text_tokenizer.pad_token_id)
        padded["prompt_attention_mask"] = F.pad(batch["prompt_attention_mask"], (0, extra), value=0)
        out = method(padded)
        if task == "rec":
            assert torch.allclose(out.item_scores, base.item_scores, atol=1e-5)
        else:
            assert torch.allclose(out.logits, base.logits, atol=1e-5)
    rec_batch = batch_for(model, "rec")
    left = dict(rec_batch)
    left["input_ids"] = F.pad(rec_batch["input_ids"], (2, 0), value=model.lm_tokenizer.pad_token_id)
    left["attention_mask"] = F.pad(rec_batch["attention_mask"], (2, 0), value=0)
    assert torch.allclose(model.recommend(left).item_scores, model.recommend(rec_batch).item_scores, atol=1e-5)
    # a real entity does matter (so the test can fail)
    other = dict(rec_batch)
    other["entity_ids"] = rec_batch["entity_ids"].clone()
    other["entity_ids"][0, 0] = 9
    assert not torch.allclose(model.recommend(other).item_scores, model.recommend(rec_batch).item_scores)


@torch.no_grad()
def test_each_graph_switch_changes_item_scores(features_dir):
    batch = None
    scores = {}
    for name, flags in {"all": {}, "no_cooc": {"use_cooccurrence_graph": False},
                        "no_text": {"use_text_graph": False}, "no_image": {"use_image_graph": False},
                        "authors": {"fusion": "authors"},
                        "authors_redial": {"fusion": "authors", "cooccurrence_input": "embedding"}}.items():
        model = build(features_dir, **flags).eval()
        batch = batch or batch_for(model, "rec")
        scores[name] = model.recommend(batch).item_scores
    for name in ("no_cooc", "no_text", "no_image", "authors"):
        assert not torch.allclose(scores[name], scores["all"]), name
    assert not torch.allclose(scores["authors_redial"], scores["authors"])


@torch.no_grad()
def test_all_graphs_off_equals_unicrs(features_dir):
    from crslab_mscrs.model.mscrs import MSCRSModel, UniCRSModel

    opt_off = tiny_opt(features_dir, use_cooccurrence_graph=False, use_text_graph=False, use_image_graph=False)
    torch.manual_seed(3)
    mscrs_off = MSCRSModel(opt_off, "cpu", tiny_vocab(), tiny_side_data()).eval()
    torch.manual_seed(3)
    unicrs = UniCRSModel(tiny_opt(None), "cpu", tiny_vocab(), tiny_side_data()).eval()  # graphs on, but forced off
    assert not any(unicrs.crs.entity_encoder.uses_graphs.values())
    assert issubclass(UniCRSModel, MSCRSModel)
    batch = batch_for(unicrs.crs, "rec")
    assert torch.equal(unicrs(batch, "rec").item_scores, mscrs_off(batch, "rec").item_scores)


@pytest.mark.parametrize("task", ["rec", "conv"])
def test_loss_falls_when_overfitting_one_batch(features_dir, task):
    model = build(features_dir, contrastive_weight=1e-2).train()
    batch = batch_for(model, task)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(25):
        table = model.entity_table()
        out = model.recommend(batch, table) if task == "rec" else model.converse(batch, table)
        assert out.contrastive_loss is not None and torch.isfinite(out.contrastive_loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    # a random tiny LM head limits what a prefix can do for the LM loss: ask for a clear drop
    assert losses[-1] < (0.5 * losses[0] if task == "rec" else losses[0] - 0.5), losses


def _train_steps(model, batch, steps=3):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model.recommend(batch).loss.backward()
        optimizer.step()
    return model.eval()


def test_same_seed_same_result_and_state_dict_roundtrip(features_dir):
    first, second = build(features_dir, seed=1), build(features_dir, seed=1)
    batch = batch_for(first, "rec")
    _train_steps(first, batch), _train_steps(second, batch)
    with torch.no_grad():
        scores = first.recommend(batch).item_scores
        assert torch.equal(scores, second.recommend(batch).item_scores)
        buffer = io.BytesIO()
        torch.save(first.state_dict(), buffer)
        buffer.seek(0)
        fresh = build(features_dir, seed=99).eval()
        assert not torch.allclose(fresh.recommend(batch).item_scores, scores)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        assert torch.equal(fresh.recommend(batch).item_scores, scores)
        small = build(features_dir, seed=98).eval()
        missing, unexpected = small.load_state_dict(first.trainable_state_dict(), strict=False)
        assert not unexpected and all(k.startswith(("lm.", "text_encoder.")) for k in missing)
        assert torch.equal(small.recommend(batch).item_scores, scores)


def test_conv_loss_covers_response_tokens_only(model):
    """Bug 8: the loss is the CE over the response positions; context/padding never count."""
    batch = batch_for(model, "conv")
    labels = batch["labels"]
    with torch.no_grad():
        out = model.converse(batch)
        full_logits = model.converse({k: v for k, v in batch.items() if k != "labels"}).logits
    assert full_logits.shape[:2] == labels.shape
    logits, targets = full_logits[:, :-1], labels[:, 1:]
    keep = targets != -100
    assert torch.allclose(out.loss, F.cross_entropy(logits[keep], targets[keep]), atol=1e-5)
    assert out.logits.shape == (int(keep.sum()), full_logits.size(-1))  # logits only where needed
    assert torch.allclose(out.logits, full_logits[out.logit_mask], atol=1e-5)
    # labelling padding positions (mask 0) does not change the loss either
    padded_labels = labels.clone()
    padded_labels[batch["attention_mask"] == 0] = 5
    with torch.no_grad():
        assert torch.allclose(model.converse({**batch, "labels": padded_labels}).loss, out.loss)
    # whereas labelling the context tokens would (so the check above can fail)
    context_labels = torch.where(batch["attention_mask"] == 1, batch["input_ids"], labels)
    with torch.no_grad():
        assert not torch.allclose(model.converse({**batch, "labels": context_labels}).loss, out.loss)


def test_entity_table_computed_once_per_step(features_dir):
    """Bug 6: one fused-table computation per step when the table is passed on."""
    model = build(features_dir).train()
    batch = batch_for(model, "rec")
    encoder = model.entity_encoder
    with mock.patch.object(type(encoder), "forward", autospec=True, side_effect=type(encoder).forward) as spy:
        table = model.entity_table()
        out = model.recommend(batch, entity_table=table)
        out.loss.backward()
        assert spy.call_count == 1
        model.recommend(batch)  # without a table: computed inside, once
        assert spy.call_count == 2


def test_entity_table_cached_without_grad_until_parameters_change(features_dir):
    model = build(features_dir).eval()
    encoder = model.entity_encoder
    with mock.patch.object(type(encoder), "forward", autospec=True, side_effect=type(encoder).forward) as spy:
        with torch.no_grad():
            first = model.entity_table()
            assert model.entity_table() is first and spy.call_count == 1
            encoder.fusion_mlp.net[0].bias.add_(1.0)  # an optimizer step / load_state_dict
            second = model.entity_table()
            assert spy.call_count == 2 and not torch.equal(first, second)
        model.entity_table()  # with autograd: always recomputed
        assert spy.call_count == 3


def test_rec_input_errors(model):
    batch = batch_for(model, "rec", labels=[7, 1])  # 7 is not an item
    with pytest.raises(ValueError, match="item entity ids"):
        model.recommend(batch)
    right = batch_for(model, "conv")
    with pytest.raises(ValueError, match="LEFT padded"):
        model.recommend({**right, "labels": torch.tensor([1, 2])})


def test_generate_greedy_beam_and_top_p(model):
    batch = batch_for(model, "generate")
    greedy = model.generate(batch, max_new_tokens=6)
    assert greedy.shape[0] == 2 and 0 < greedy.shape[1] <= 6
    assert torch.equal(greedy, model.generate(batch, max_new_tokens=6))  # deterministic
    beam = model.generate(batch, max_new_tokens=6, num_beams=3)
    assert beam.shape[0] == 2 and beam.shape[1] <= 6
    sampled = [model.generate(batch, max_new_tokens=6, do_sample=True, top_p=0.9,
                              generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]

    assert torch.equal(sampled[0], sampled[1]) and not torch.equal(sampled[0], sampled[2])
    # no 3-gram repeats within context + generated tokens
    for row, context, mask in zip(greedy.tolist(), batch["input_ids"].tolist(), batch["attention_mask"].tolist()):
        tokens = [t for t, m in zip(context, mask) if m] + row
        grams = [tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
        assert len(grams) == len(set(grams))


def test_generation_is_conditioned_on_the_prompt(model):
    batch = batch_for(model, "generate")
    base = model.generate(batch, max_new_tokens=5)
    with torch.no_grad():
        for p in model.prompt_encoder.prefix_projection.parameters():
            p.mul_(50.0)
    try:
        assert not torch.equal(model.generate(batch, max_new_tokens=5), base)
    finally:
        with torch.no_grad():
            for p in model.prompt_encoder.prefix_projection.parameters():
                p.div_(50.0)


@torch.no_grad()
def test_bfloat16_lm_weights(features_dir):
    model = build(features_dir, lm="tiny-random-llama", lm_dtype="bfloat16").eval()
    assert model.lm.dtype == torch.bfloat16
    rec = model.recommend(batch_for(model, "rec"))
    assert rec.item_scores.dtype == torch.float32 and torch.isfinite(rec.loss)
    assert torch.isfinite(model.converse(batch_for(model, "conv")).loss)
    assert model.generate(batch_for(model, "generate"), max_new_tokens=3, num_beams=2).shape[0] == 2


@pytest.mark.parametrize("task,fusion", [("rec", "sum"), ("conv", "sum"), ("rec", "authors"), ("conv", "authors")])
def test_step_rows_table_gives_the_full_tables_loss_and_gradients(features_dir, task, fusion):
    """A training step computes only the rows it reads (step_rows): same loss, same gradients."""
    model = build(features_dir, fusion=fusion).train()
    batch = batch_for(model, task)
    runs = []
    for rows in (None, model.step_rows(batch, task)):
        model.zero_grad(set_to_none=True)
        table = model.entity_table(rows)
        out = model.recommend(batch, entity_table=table) if task == "rec" else model.converse(batch, entity_table=table)
        out.loss.backward()
        runs.append((out.loss.detach(), {name: p.grad.clone() for name, p in model.entity_encoder.named_parameters()
                                         if p.grad is not None}, table))
    (full_loss, full_grads, full_table), (rows_loss, rows_grads, rows_table) = runs
    torch.testing.assert_close(rows_loss, full_loss)
    assert full_grads.keys() == rows_grads.keys() and full_grads
    for name in full_grads:
        torch.testing.assert_close(rows_grads[name], full_grads[name], msg=name)
    assert isinstance(rows_table, EntityRows)
    read = model.step_rows(batch, task).unique()
    assert torch.equal(rows_table.rows, read) and len(read) < len(full_table)  # only the rows it reads
    torch.testing.assert_close(rows_table.gather(read), full_table[read].detach())
    unread = torch.tensor([i for i in range(len(full_table)) if i not in read.tolist()][:1])
    with pytest.raises(KeyError, match="not computed"):
        rows_table.gather(unread)
    assert model.step_rows(batch, "pretrain") is None  # pre-training scores every entity
    with pytest.raises(ValueError, match="full table"):
        model.pretrain(batch_for(model, "pretrain", labels=[7, 2]), entity_table=rows_table)
