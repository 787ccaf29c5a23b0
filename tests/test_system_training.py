"""MSCRS system end to end on toy data with tiny random models: stages, checkpoints chosen on
valid, test outputs, determinism, resume after a kill, interactive mode."""
import io
import json
from types import SimpleNamespace

import pytest
import torch

import crslab_mscrs  # noqa: F401  (compat + registration)
from crslab_mscrs.evaluation.rankings import read_rankings
from crslab_mscrs.training.checkpoint import load_checkpoint, load_checkpoint_weights, load_trainable_state
from crslab_mscrs.batches.dataloader import MSCRSDataLoader
from crslab_mscrs.training.system import MSCRSSystem
from crslab_mscrs.training.toy import N_ITEMS, toy_splits, toy_vocab_and_side_data, write_toy_graphs


class Opt:
    """What CRSLab's ``Config`` offers the system (``[]`` with None for a missing key,
    ``get``, ``in``, assignment and the dict in ``.opt``), and nothing more: no dict methods."""

    def __init__(self, **options):
        self.opt = dict(options)

    def __getitem__(self, key):
        return self.opt.get(key)

    def __setitem__(self, key, value):
        self.opt[key] = value

    def get(self, key, default=None):
        return self.opt.get(key, default)

    def __contains__(self, key):
        return key in self.opt


class SimulatedKill(Exception):
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mscrs_system")
    vocab, side = toy_vocab_and_side_data()
    return SimpleNamespace(root=root, features=write_toy_graphs(root / "features"), vocab=vocab, side=side,
                           splits=toy_splits(n_train=6, n_valid=2, n_test=2))


def section(epochs):
    return {"epoch": epochs, "batch_size": 8, "optimizer": {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01},
            "warmup_steps": 1}


def make_system(env, run_name, restore=False, tensorboard=False, **overrides):
    opt = Opt(dataset="ReDial", tokenize="nltk", model="MSCRS", model_name="MSCRS", gpu=[-1], evaluator="rec",
              seed=0, lm="tiny-random-gpt2", text_encoder="tiny-random-bert", features_dir=str(env.features),
              save_dir=str(env.root / "save"), run_name=run_name, n_prefix_rec=2, n_prefix_conv=2,
              max_new_tokens=4, rankings_out=str(env.root / run_name / "rankings.jsonl"),
              metrics_out=str(env.root / run_name / "metrics.json"),
              pretrain=section(1), rec=section(2), conv=section(1))
    opt.opt.update(overrides)
    loaders = [MSCRSDataLoader(opt, env.splits[name], env.vocab) for name in ("train", "valid", "test")]
    return MSCRSSystem(opt, *loaders, env.vocab, env.side, restore_system=restore, tensorboard=tensorboard)


def spy_evaluations(system):
    """Record which split each evaluation runs on (to check that test runs once)."""
    calls = []
    names = {id(system.train_dataloader): "train", id(system.valid_dataloader): "valid",
             id(system.test_dataloader): "test"}
    for owner, method in ((system.evaluation, "rec_metrics"), (system.evaluation, "conv_nll"),
                          (system.generation, "generate_replies")):
        original = getattr(owner, method)

        def wrapper(loader, *args, _original=original, _method=method, **kwargs):
            calls.append((_method, names[id(loader)]))
            return _original(loader, *args, **kwargs)

        setattr(owner, method, wrapper)
    return calls


@pytest.fixture(scope="module")
def full_run(env):
    system = make_system(env, "full")
    calls = spy_evaluations(system)
    stage_start = {}
    original_train_stage = system.loop.train_stage

    def train_stage(stage, *args, **kwargs):
        stage_start[stage] = {k: v.clone() for k, v in system.model.state_dict().items()}
        return original_train_stage(stage, *args, **kwargs)

    system.loop.train_stage = train_stage
    results = system.fit()
    return SimpleNamespace(system=system, results=results, calls=calls, stage_start=stage_start)


def test_fit_writes_metrics_and_rankings(env, full_run):
    metrics = json.loads((env.root / "full" / "metrics.json").read_text())
    stages = metrics["stages"]
    assert set(stages) == {"pretrain", "rec", "conv"}
    assert "test" not in stages["pretrain"] and "inflated" in stages["pretrain"]["note"]
    rec = stages["rec"]["test"]
    assert {"recall@1", "recall@10", "recall@50", "ndcg@10", "mrr@50"} <= set(rec)
    assert 0.0 <= rec["recall@50"] <= 1.0
    conv = stages["conv"]["test"]
    assert conv["ppl"] > 1 and conv["generation"]["available"], conv["generation"]
    assert {"dist@2", "bleu@1", "rouge@L", "item_ratio"} <= set(conv["generation"])
    test_turns = {(t.conv_id, t.turn_index) for t in full_run.system.test_dataloader.turns if t.is_system and t.items}
    rankings = read_rankings(env.root / "full" / "rankings.jsonl", min_length=N_ITEMS,
                             item_ids=env.side["item_entity_ids"])
    assert set(rankings) == test_turns and len(test_turns) == 4
    assert (full_run.system.run_dir / "rankings.jsonl").read_text() == \
        (env.root / "full" / "rankings.jsonl").read_text()
    # one vocabulary: per-turn recall@K from the rankings file, CRSLab's hit@K under its own name
    from crslab_mscrs.evaluation.instances import RecInstance
    from crslab_mscrs.evaluation.ranking import ranking_metrics

    turns = [RecInstance(t.conv_id, t.turn_index, tuple(t.items), ()) for t in full_run.system.test_dataloader.turns
             if t.is_system and t.items]
    recomputed = ranking_metrics(turns, rankings)
    for name in ("recall@1", "recall@10", "ndcg@10", "recall@1_mention"):
        assert rec[name] == pytest.approx(recomputed[name]), name
    assert {"hit@1", "hit@10", "hit@50", "crslab_ndcg@10", "crslab_mrr@10"} <= set(rec)
    assert stages["rec"]["valid_selection_metric"] == "recall@50" and stages["conv"]["valid_selection_metric"] == "loss"
    assert conv["generation"]["paper_conventions"]["system_prefix"] == 1.0  # MSCRS: "System: " prefix


def test_test_split_is_evaluated_once_per_stage(full_run):
    test_calls = [c for c in full_run.calls if c[1] == "test"]
    assert sorted(test_calls) == [("conv_nll", "test"), ("generate_replies", "test"), ("rec_metrics", "test")]
    assert ("rec_metrics", "valid") in full_run.calls and ("conv_nll", "valid") in full_run.calls


def test_rec_checkpoint_is_chosen_on_valid_and_used_for_test(env, full_run):
    rec = full_run.results["rec"]
    history = [h["valid"] for h in rec["valid_history"]]
    assert rec["chosen_epoch"] == history.index(max(history))
    best = torch.load(full_run.system.run_dir / "rec_best.pth", weights_only=True)
    assert best["epoch"] == rec["chosen_epoch"]
    # the reported test metrics are those of the chosen weights
    system = full_run.system
    load_trainable_state(system.model, best["model"])
    with torch.no_grad():
        again, _ = system.evaluation.rec_metrics(system.test_dataloader, 8, mode="test")
    assert again["recall@50"] == pytest.approx(rec["test"]["recall@50"])
    assert again["mrr@50"] == pytest.approx(rec["test"]["mrr@50"])


def test_conv_starts_from_the_chosen_rec_weights(full_run):
    """Bug 2 of the authors' code: the conversation stage must start from the rec weights."""
    rec_best = load_checkpoint_weights(full_run.system.run_dir / "rec_best.pth")
    at_conv_start = full_run.stage_start["conv"]
    assert any("entity_encoder" in k for k in rec_best)
    for key, value in rec_best.items():
        assert torch.equal(at_conv_start[key].cpu(), value), key
    # and the graphs stay on in the conversation stage
    assert full_run.system.core.config.use_cooccurrence_graph


def test_same_seed_same_result(env, full_run):
    again = make_system(env, "again").fit()
    assert again["rec"]["test"] == full_run.results["rec"]["test"]
    assert again["conv"]["test"]["loss"] == pytest.approx(full_run.results["conv"]["test"]["loss"], abs=0)
    assert (env.root / "again" / "rankings.jsonl").read_text() == (env.root / "full" / "rankings.jsonl").read_text()


def test_resume_after_a_kill_equals_the_uninterrupted_run(env, full_run, monkeypatch):
    killed = make_system(env, "killed")

    def kill_after_first_rec_epoch(stage, epoch):
        if stage == "rec" and epoch == 0:
            raise SimulatedKill()

    monkeypatch.setattr(killed.loop, "on_epoch_saved", kill_after_first_rec_epoch)
    with pytest.raises(SimulatedKill):
        killed.fit()
    last = load_checkpoint(killed.run_dir / "last.pth")
    assert last.completed == ["pretrain"] and last.current.epoch_done == 0

    resumed = make_system(env, "killed", restore=True)  # CRSLab's -rs flag
    results = resumed.fit()
    assert results["rec"]["valid_history"] == full_run.results["rec"]["valid_history"]
    assert results["rec"]["test"] == full_run.results["rec"]["test"]
    assert results["conv"]["test"]["loss"] == pytest.approx(full_run.results["conv"]["test"]["loss"], abs=0)
    assert (env.root / "killed" / "rankings.jsonl").read_text() == \
        (env.root / "full" / "rankings.jsonl").read_text()


def record_random_draws(system) -> list:
    """(stage, torch draw, Python draw) after every training step of ``system``."""
    import random

    draws = []
    original_step = system.step

    def drawing_step(batch, stage, mode):
        output = original_step(batch, stage, mode)
        if mode == "train":
            draws.append((stage, float(torch.rand(1)), random.random()))
        return output

    system.step = drawing_step
    return draws


def test_resume_inside_an_epoch_equals_the_uninterrupted_run(env):
    """``checkpoint_every_min`` writes last.pth inside an epoch (here after every optimizer
    step); a run killed after the first batch of rec epoch 0 goes on from the next batch:
    same batch order, same random draws, same results as the uninterrupted run. Every
    training step here also draws from torch's and Python's generators (as dropout or
    sampling would), so a random state not carried over shows."""
    rec = dict(section(2), checkpoint_every_min=1e-9)
    uninterrupted = make_system(env, "uninterrupted_draws", rec=rec)
    expected_draws = record_random_draws(uninterrupted)
    expected = uninterrupted.fit()

    killed = make_system(env, "killed_mid_epoch", rec=rec)
    assert killed.train_dataloader.num_batches("rec", 8) > 1  # so that the kill is inside the epoch

    def kill_after_first_batch(stage, epoch, batches_done):
        if stage == "rec":
            raise SimulatedKill()

    killed.loop.on_partial_saved = kill_after_first_batch
    draws = record_random_draws(killed)
    with pytest.raises(SimulatedKill):
        killed.fit()
    last = load_checkpoint(killed.run_dir / "last.pth")
    assert last.completed == ["pretrain"] and last.current.epoch_done == -1
    assert last.current.partial.batches_done == 1

    with pytest.raises(ValueError, match="rec.batch_size=8"):  # another batch order: refused, not mixed
        make_system(env, "killed_mid_epoch", restore=True, rec=dict(rec, batch_size=4)).fit()

    resumed = make_system(env, "killed_mid_epoch", restore=True, rec=rec)
    steps = count_training_steps(resumed)
    resumed_draws = record_random_draws(resumed)
    results = resumed.fit()
    n_rec_batches = resumed.train_dataloader.num_batches("rec", 8)
    assert steps.count("rec") == 2 * n_rec_batches - 1  # the first batch is not trained twice
    assert draws + resumed_draws == expected_draws
    assert results["rec"]["valid_history"] == expected["rec"]["valid_history"]
    assert results["rec"]["test"] == expected["rec"]["test"]
    assert results["conv"]["test"]["loss"] == pytest.approx(expected["conv"]["test"]["loss"], abs=0)
    assert (env.root / "killed_mid_epoch" / "rankings.jsonl").read_text() == \
        (env.root / "uninterrupted_draws" / "rankings.jsonl").read_text()


def test_checkpoint_interval_must_be_a_positive_number(env):
    system = make_system(env, "every_bad", stages=["rec"], rec=dict(section(1), checkpoint_every_min=0))
    with pytest.raises(ValueError, match="rec.checkpoint_every_min"):
        system.fit()


def test_interact_answers_a_scripted_user(full_run):
    out, err = io.StringIO(), io.StringIO()
    full_run.system.interact(stdin=io.StringIO("hi i like horror movies\n\nhave you seen Red River?\n[EXIT]\nignored\n"),
                             stdout=out, top_k=2, stderr=err)
    lines = out.getvalue().splitlines()
    replies = [line for line in lines if line.startswith("System: ")]
    recommended = [line for line in lines if line.startswith("Recommended: ")]
    assert len(replies) == 2 and len(recommended) == 2
    assert all(len(line.split("; ")) == 2 for line in recommended)
    assert all("<movie>" not in line for line in replies)
    assert err.getvalue().startswith("Loaded ") and "conv_best.pth" in err.getvalue()  # which checkpoint, on stderr
    assert all(line.startswith(("You: ", "System: ", "Recommended: ")) for line in lines)  # stdout: the dialogue
    assert "You: hi i like horror movies" in lines  # the prompt (piped input is echoed after it)


def test_retrieved_demonstrations_option(env):
    system = make_system(env, "demos", stages=["conv"], use_demonstrations=True, n_demonstrations=2,
                         demonstration_max_length=16)
    system.demonstrations.attach(system.loaders())
    train = system.train_dataloader
    batch = train.conv_batchify(train.conv_turns()[:3])
    assert batch["demo_input_ids"].shape[:2] == (3, 2) and batch["demo_input_ids"].shape[2] <= 16
    assert batch["demo_mask"].all()
    # a turn never gets a demonstration from its own conversation
    index = system.demonstrations.index
    own = train.turns[train.conv_turns()[0]]
    retrieved = index.retriever.retrieve(index.embed([train._feature("context", own.index)["prompt"]],
                                                     index.pad_id), 2, [own.conv_id])
    assert all(index.retriever.conversation_ids[j] != own.conv_id for j in retrieved[0].tolist())
    results = system.fit()
    assert results["conv"]["test"]["generation"]["available"]
    out = io.StringIO()
    system.interact(stdin=io.StringIO("i like horror movies\n"), stdout=out)
    assert "System: " in out.getvalue()


def test_tensorboard_logs_into_the_run_folder(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # CRSLab's evaluator also writes ./runs/
    system = make_system(env, "tb", tensorboard=True, stages=["rec"], rec=section(1))
    system.fit()
    system.writer.flush()
    assert list((system.run_dir / "tensorboard").glob("events.out.tfevents.*"))


def count_training_steps(system) -> list:
    """The stage of every training step ``system`` takes from now on."""
    steps = []
    original_step = system.step

    def counting_step(batch, stage, mode):
        if mode == "train":
            steps.append(stage)
        return original_step(batch, stage, mode)

    system.step = counting_step
    return steps


def test_time_bounded_stage_caps_batches_and_skips_validation(env):
    """``max_batches_per_epoch`` caps the training batches of an epoch; ``validate: false`` skips the valid
    pass and keeps the last epoch (used for the budgeted CPU runs of the benchmark)."""
    rec = dict(section(2), max_batches_per_epoch=1, validate=False)
    system = make_system(env, "budget", stages=["rec"], rec=rec)
    calls = spy_evaluations(system)
    steps = count_training_steps(system)
    assert system.train_dataloader.num_batches("rec", 8) > 1  # so that the cap matters
    results = system.fit()
    assert steps == ["rec", "rec"]  # 2 epochs x 1 batch
    assert calls == [("rec_metrics", "test")]  # no valid pass, test once
    assert results["rec"]["chosen_epoch"] == 1
    assert [h["valid"] for h in results["rec"]["valid_history"]] == [None, None]
    # metrics.json records what was trained, for crslab_mscrs/evaluation/budget.py
    assert [h["batches"] for h in results["rec"]["valid_history"]] == [1, 1]
    budget = results["rec"]["budget"]
    assert budget["epochs"] == 2 and budget["max_batches_per_epoch"] == 1
    assert budget["batches_per_epoch"] == system.train_dataloader.num_batches("rec", budget["batch_size"])
    assert results["rec"]["valid_selection_metric"].startswith("none (validate: false")


def test_time_limit_ends_the_stage_after_the_batch_that_passes_it(env):
    """``time_limit_min`` (used for the GPU runs on a fixed device budget): the batch that
    passes the limit ends the epoch; that epoch is validated, chosen and tested; later
    epochs are skipped, also by a run resumed after a kill right after that epoch."""
    rec = dict(section(3), time_limit_min=1e-9)  # passes after the first batch
    system = make_system(env, "time_limited", stages=["rec"], rec=rec)
    calls = spy_evaluations(system)
    steps = count_training_steps(system)

    def kill_after_the_epoch(stage, epoch):
        raise SimulatedKill()

    system.loop.on_epoch_saved = kill_after_the_epoch
    assert system.train_dataloader.num_batches("rec", 8) > 1  # so that cutting the epoch matters
    with pytest.raises(SimulatedKill):
        system.fit()
    assert steps == ["rec"] and calls == [("rec_metrics", "valid")]
    resumed = make_system(env, "time_limited", restore=True, stages=["rec"], rec=rec)
    resumed_calls = spy_evaluations(resumed)
    resumed_steps = count_training_steps(resumed)
    results = resumed.fit()
    assert resumed_steps == [] and resumed_calls == [("rec_metrics", "test")]
    assert results["rec"]["chosen_epoch"] == 0
    assert results["rec"]["valid_history"][0]["time_limit_reached"] is True
    assert results["rec"]["train_seconds"] >= 0
    assert load_checkpoint(resumed.run_dir / "last.pth").completed == ["rec"]


def test_time_limit_must_be_a_positive_number(env):
    system = make_system(env, "time_bad", stages=["rec"], rec=dict(section(1), time_limit_min="10"))
    with pytest.raises(ValueError, match="rec.time_limit_min"):
        system.fit()


def test_bf16_autocast_path_runs_every_stage(env, monkeypatch):
    """The CUDA runs train under bf16 autocast; the same path, emulated with CPU autocast,
    must run pre-training, rec, conv and generation (a dtype clash between the float32
    sparse graph layers and bf16 dense outputs broke it before the entity table was
    computed with autocast off)."""
    system = make_system(env, "bf16", lm="tiny-random-llama", rec=section(1))
    monkeypatch.setattr(system, "autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert system.core.entity_table().dtype == torch.float32
    results = system.fit()
    assert set(results) == {"pretrain", "rec", "conv"}
    assert 0.0 <= results["rec"]["test"]["recall@10"] <= 1.0
    assert results["conv"]["test"]["generation"]["n_replies"] > 0


def test_stage_validate_must_be_a_bool(env):
    system = make_system(env, "budget_bad", stages=["rec"], rec=dict(section(1), validate="no"))
    with pytest.raises(ValueError, match="rec.validate"):
        system.fit()


def test_generated_slots_are_filled_with_the_recommenders_top_items(full_run, monkeypatch):
    """`<movie>` slots of generated replies get the rec weights' top items, in rank order; items
    are ranked only for the replies that have a slot."""
    system = full_run.system
    loader = system.test_dataloader
    n_rows = len(loader.generation_rows())
    slot = system.settings.placeholder
    scripted = [f"try {slot} or {slot}" if i % 2 == 0 else "what else do you like?" for i in range(n_rows)]
    texts = iter(scripted)
    monkeypatch.setattr(system.core, "generate",
                        lambda batch, **kwargs: torch.zeros(len(batch["input_ids"]), 1, dtype=torch.long))
    monkeypatch.setattr(system.core.lm_tokenizer, "batch_decode",
                        lambda ids, **kwargs: [next(texts) for _ in range(len(ids))])
    ranked_rows = []
    original_step = system.step

    def spying_step(batch, stage, mode):
        if stage == "rec":
            ranked_rows.append(len(batch["input_ids"]))
        return original_step(batch, stage, mode)

    monkeypatch.setattr(system, "step", spying_step)
    replies = system.generation.generate_replies(loader, batch_size=8)
    assert system.item_names is system.train_dataloader.item_names  # one resolver: masking and filling
    assert [r["raw"] for r in replies] == scripted
    assert sum(ranked_rows) == len(range(0, n_rows, 2))  # only the replies with slots were ranked
    for i, reply in enumerate(replies):
        if i % 2:
            assert reply["n_slots"] == 0 and reply["top_items"] == [] and reply["reply"] == scripted[i]
            continue
        first, second = (system.item_names.name(e) for e in reply["top_items"][:2])
        assert reply["n_slots"] == 2 and reply["reply"] == f"try {first} or {second}"


def test_killed_test_generation_resumes_from_its_journal(env):
    """A run killed while generating the test replies resumes that pass after ``--restore``:
    the teacher-forced pass and the replies already written are reused, generation goes on
    from the next row, and the replies equal an uninterrupted pass with the same weights."""
    conv = dict(section(1), eval_batch_size=2)
    killed = make_system(env, "gen_killed", conv=conv)
    assert len(killed.test_dataloader.generation_rows()) > 2  # so that the kill cuts the pass

    def kill_after_first_batch(n_done):
        raise SimulatedKill()

    killed.generation.on_replies_saved = kill_after_first_batch
    with pytest.raises(SimulatedKill):
        killed.fit()
    journal = killed.run_dir / "test_generation.journal.jsonl"
    assert len(journal.read_text().splitlines()) == 1 + 1 + 2  # key, nll, first batch

    resumed = make_system(env, "gen_killed", restore=True, conv=conv)
    calls = spy_evaluations(resumed)
    generated_rows = []
    original_generate = resumed.core.generate

    def counting_generate(batch, **kwargs):
        generated_rows.append(len(batch["input_ids"]))
        return original_generate(batch, **kwargs)

    resumed.core.generate = counting_generate
    results = resumed.fit()
    n_rows = len(resumed.test_dataloader.generation_rows())
    assert ("conv_nll", "test") not in calls and sum(generated_rows) == n_rows - 2
    assert results["conv"]["test"]["generation"]["n_replies"] == n_rows
    assert not journal.exists()  # its replies are in test_replies.jsonl now
    written = [json.loads(line) for line in (resumed.run_dir / "test_replies.jsonl").read_text().splitlines()]
    resumed.core.generate = original_generate
    uninterrupted = resumed.generation.generate_replies(resumed.test_dataloader, batch_size=2)
    assert [r["raw"] for r in written] == [r["raw"] for r in uninterrupted]
    assert [(r["conv_id"], r["turn_index"]) for r in written] == \
        [(r["conv_id"], r["turn_index"]) for r in uninterrupted]


def test_sampled_generation_is_seeded_per_batch(full_run):
    """With ``do_sample`` each batch draws from its own seed: the same replies on every pass
    (so also after a resume), and the caller's random state is left as it was."""
    system = full_run.system
    system.opt["do_sample"], system.opt["top_p"] = True, 0.9
    try:
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        first = system.generation.generate_replies(system.test_dataloader, batch_size=2)
        assert torch.equal(torch.rand(3), expected)  # the caller's random state is untouched
        second = system.generation.generate_replies(system.test_dataloader, batch_size=2)  # other global state
    finally:
        system.opt["do_sample"], system.opt["top_p"] = False, None
    assert [r["raw"] for r in first] == [r["raw"] for r in second]
