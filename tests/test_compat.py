"""The CRSLab 0.1.2 compatibility layer: one test per patch, plus idempotence and smoke tests.

Each patch test shows BOTH sides: the unpatched behaviour, observed in a fresh subprocess
that never imports ``crslab_mscrs`` (fixture ``unpatched``), raises or is wrong; the same
call in this process, where ``import crslab_mscrs`` applied the layer, works.
"""
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import crslab_mscrs  # noqa: F401  (applies the compat layer)
from crslab_mscrs import compat

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # also under pytest's importlib import mode
    sys.path.insert(0, str(TESTS_DIR))
import test_compat_helpers as helpers  # noqa: E402

# Runs the ORIGINAL CRSLab code. Checks are ordered: the import blockers are observed first,
# then stubbed (helpers.stub_import_blockers) so the code behind them can be reached.
UNPATCHED_SCRIPT = textwrap.dedent("""
    import json, sys, traceback
    sys.path.insert(0, {tests_dir!r})
    import numpy as np, torch
    import test_compat_helpers as helpers
    results = {{}}

    def check(name, fn):
        try:
            results[name] = {{"value": fn()}}
        except BaseException as err:
            results[name] = {{"error": type(err).__name__, "message": str(err)[:300]}}

    def import_evaluator():
        import crslab.evaluator
    check("fasttext", import_evaluator)

    def adamw():
        import transformers.processing_utils
        from transformers import AdamW
        return AdamW.__module__
    check("adamw", adamw)

    def fuzzywuzzy():
        from fuzzywuzzy.process import extractOne
    check("fuzzywuzzy", fuzzywuzzy)

    def pkuseg():
        import pkuseg
    check("pkuseg", pkuseg)

    def position_codes():
        from crslab.model.utils.modules.transformer import create_position_codes
        create_position_codes(4, 6, out=torch.nn.Embedding(4, 6).weight)
    check("position_codes", position_codes)

    def kgsf_decoder():
        from crslab.model.crs.kgsf.modules import TransformerDecoderKG
        emb = torch.nn.Embedding(12, 8)
        TransformerDecoderKG(2, 1, 8, 8, 12, emb, 0.0, 0.0, 0.0, True, False, 0, 32)
    check("kgsf_decoder", kgsf_decoder)

    def kbrd_user():
        model = helpers.build_tiny_kbrd()
        with torch.no_grad():
            users = helpers.kbrd_user_embeddings(model, [[0, 1], [3, 4]])
        return users.abs().sum().item()
    check("kbrd_user", kbrd_user)

    def inspired():
        model = helpers.build_tiny_inspired_conv()
        model.converse(helpers.inspired_batch(), "train")
    check("inspired", inspired)

    helpers.stub_import_blockers()

    def numpy_metric():
        from crslab.evaluator.metrics.gen import GreedyMatch
        emb = [np.ones(3, dtype=np.float32), np.arange(3, dtype=np.float32)]
        GreedyMatch.compute(emb, [emb])
    check("numpy_metric", numpy_metric)

    def lr_scheduler():
        from crslab.system.utils.lr_scheduler import ReduceLROnPlateau
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        ReduceLROnPlateau(optimizer, patience=0)
    check("lr_scheduler", lr_scheduler)

    def conv_evaluator():
        from crslab.evaluator import get_evaluator
        get_evaluator("conv", "ReDial")
    check("conv_evaluator", conv_evaluator)

    def standard_dist():
        from collections import defaultdict
        from crslab.evaluator.metrics import Metrics
        from crslab.evaluator.standard import StandardEvaluator
        evaluator = StandardEvaluator.__new__(StandardEvaluator)
        evaluator.dist_set, evaluator.dist_cnt = defaultdict(set), 0
        evaluator.gen_metrics = Metrics()
        # only to get past the embedding step, which needs fastText; not product code
        evaluator._get_sent_embedding = lambda sent: [np.ones(3)]
        evaluator.gen_evaluate("movie movie movie", ["a movie"])
        return len(evaluator.dist_set["dist@1"]) / evaluator.dist_cnt
    check("standard_dist", standard_dist)

    results["crslab_mscrs_imported"] = "crslab_mscrs" in sys.modules
    print("RESULTS " + json.dumps(results))
""")


def run_python(source: str) -> dict:
    completed = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=300)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULTS ")]
    assert lines, f"subprocess failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULTS "):])


# A fresh process WITH the layer: the crslab packages import, and transformers.AdamW survives
# one more replacement of sys.modules['transformers'].
PATCHED_SCRIPT = textwrap.dedent("""
    import json, sys
    import crslab_mscrs
    import crslab.system, crslab.evaluator, crslab.model
    import torch, transformers
    from pathlib import Path
    from transformers.utils.import_utils import direct_transformers_import
    before = sys.modules["transformers"]
    direct_transformers_import(str(Path(transformers.__file__).parent))
    replaced = sys.modules["transformers"] is not before
    from transformers import AdamW
    print("RESULTS " + json.dumps({
        "imported": [m for m in ("crslab.system", "crslab.evaluator", "crslab.model") if m in sys.modules],
        "applied": crslab_mscrs.compat.applied(),
        "replaced": replaced,
        "adamw_after_replacement": AdamW is torch.optim.AdamW,
        "system_base_adamw": crslab.system.base.AdamW is torch.optim.AdamW,
    }))
""")


@pytest.fixture(scope="module")
def patched_fresh():
    return run_python(PATCHED_SCRIPT)


@pytest.fixture(scope="module")
def unpatched():
    results = run_python(UNPATCHED_SCRIPT.format(tests_dir=str(TESTS_DIR)))
    assert results.pop("crslab_mscrs_imported") is False
    return results


# 1 ------------------------------------------------------------------------- fasttext
def test_fasttext_stand_in_unblocks_evaluator_and_reports_embeddings_absent(unpatched):
    assert unpatched["fasttext"]["error"] == "ModuleNotFoundError"
    assert "fasttext" in unpatched["fasttext"]["message"]

    import crslab.evaluator
    import fasttext
    from crslab_mscrs.compat.optional_imports import is_stand_in
    from crslab_mscrs.evaluation.embedding import real_fasttext_module

    if not is_stand_in(fasttext):
        pytest.skip("the real fastText package is installed here")
    assert real_fasttext_module() is None
    with pytest.raises(ImportError, match="fastText is not installed"):
        fasttext.load_model("cc.en.300.bin")
    evaluator = crslab.evaluator.get_evaluator("standard", "ReDial")
    assert evaluator.word_vectors is None
    evaluator.gen_evaluate("i like it", ["i like that"])
    report = evaluator.report()
    assert not {"greedy", "average", "extreme"} & set(report)  # absent, never made up
    assert report["f1"] == pytest.approx(2 / 3)


# 2 ------------------------------------------------------------------------- AdamW
def test_transformers_adamw_survives_module_replacement(unpatched, patched_fresh):
    assert unpatched["adamw"]["error"] == "ImportError"

    from transformers import AdamW
    assert AdamW is torch.optim.AdamW
    # transformers 5 re-executes its __init__ (a new sys.modules['transformers']) on the first
    # import of processing_utils; `patched_fresh` forces one more replacement after the patch.
    assert patched_fresh["replaced"] is True
    assert patched_fresh["adamw_after_replacement"] is True
    assert patched_fresh["system_base_adamw"] is True


# 3 ------------------------------------------------------------------------- lr scheduler
def test_reduce_lr_on_plateau_without_verbose(unpatched):
    assert unpatched["lr_scheduler"]["error"] == "TypeError"

    from crslab.system.utils.lr_scheduler import ReduceLROnPlateau
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = ReduceLROnPlateau(optimizer, factor=0.5, patience=0, verbose=True)
    scheduler.valid_step(1.0)
    scheduler.valid_step(2.0)  # no improvement, patience 0 -> halve
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


# 4 ------------------------------------------------------------------------- position codes
def test_position_codes_on_frozen_embedding(unpatched):
    assert unpatched["position_codes"]["error"] == "RuntimeError"
    assert "leaf" in unpatched["position_codes"]["message"]
    assert unpatched["kgsf_decoder"]["error"] == "RuntimeError"

    # importlib: crslab.model.crs's `from .kgsf import *` shadows the kgsf package attribute
    kgsf_modules = importlib.import_module("crslab.model.crs.kgsf.modules")
    transformer = importlib.import_module("crslab.model.utils.modules.transformer")
    from crslab_mscrs.compat.positional import create_position_codes
    assert transformer.create_position_codes is create_position_codes
    assert kgsf_modules.create_position_codes is create_position_codes

    weight = torch.nn.Embedding(4, 6).weight
    transformer.create_position_codes(4, 6, out=weight)
    assert weight.requires_grad is False
    pos, j = 3, 1  # PE[pos, 2j] = sin(pos / 10000^(2j/dim)), PE[pos, 2j+1] = cos(...)
    assert weight[pos, 2 * j].item() == pytest.approx(np.sin(pos / 10000 ** (2 * j / 6)), abs=1e-6)
    assert weight[pos, 2 * j + 1].item() == pytest.approx(np.cos(pos / 10000 ** (2 * j / 6)), abs=1e-6)
    decoder = kgsf_modules.TransformerDecoderKG(2, 1, 8, 8, 12, torch.nn.Embedding(12, 8),
                                                0.0, 0.0, 0.0, True, False, 0, 32)
    assert decoder.position_embeddings.weight.requires_grad is False


# 5 ------------------------------------------------------------------------- numpy metrics
def test_metrics_accept_numpy_scalars(unpatched):
    assert unpatched["numpy_metric"]["error"] == "AssertionError"

    from crslab.evaluator.metrics.base import AverageMetric
    from crslab.evaluator.metrics.gen import GreedyMatch
    emb = [np.ones(3, dtype=np.float32), np.arange(3, dtype=np.float32)]
    assert GreedyMatch.compute(emb, [emb]).value() == pytest.approx(1.0, abs=1e-6)
    assert AverageMetric(np.float32(0.25), np.int64(1)).value() == pytest.approx(0.25)


# 6 ------------------------------------------------------------------------- INSPIRED cache
def test_inspired_converse_with_dynamic_cache(unpatched):
    assert unpatched["inspired"]["error"] == "TypeError"
    assert "subscriptable" in unpatched["inspired"]["message"]

    from crslab_mscrs.compat.inspired_cache import cached_length
    model = helpers.build_tiny_inspired_conv()
    with torch.no_grad():
        loss, pred = model.converse(helpers.inspired_batch(), "train")
    assert torch.isfinite(loss) and pred.shape == (2, 4)
    legacy = ((torch.zeros(1, 2, 7, 4), torch.zeros(1, 2, 7, 4)),)
    assert cached_length(legacy) == 7 and cached_length(None) == 0


# 7 ------------------------------------------------------------------------- fuzzywuzzy / pkuseg
def test_fuzzywuzzy_on_rapidfuzz_and_pkuseg_stand_in(unpatched):
    assert unpatched["fuzzywuzzy"]["error"] == "ModuleNotFoundError"
    assert unpatched["pkuseg"]["error"] == "ModuleNotFoundError"

    from fuzzywuzzy.process import extract, extractOne
    assert extractOne("titanic", ["Titanic", "Avatar"], score_cutoff=90) == ("Titanic", 100)
    assert extractOne("zzzz", ["Titanic", "Avatar"], score_cutoff=90) is None
    assert extractOne("avatar", {"m1": "Titanic", "m2": "Avatar"}) == ("Avatar", 100, "m2")
    assert [choice for choice, _ in extract("avatar", ["Avatar", "Titanic"], limit=2)][0] == "Avatar"
    import pkuseg
    with pytest.raises(ImportError, match="pip install pkuseg"):
        pkuseg.pkuseg()


# 8 ------------------------------------------------------------------------- wheel bugs
def test_kbrd_user_embedding_uses_context_entities(unpatched):
    assert unpatched["kbrd_user"]["value"] == 0.0  # the wheel: always zero

    model = helpers.build_tiny_kbrd()
    batch = {"context_entities": [[0, 1], [3, 4], []], "item": torch.tensor([2, 2, 2])}
    with torch.no_grad():
        users = helpers.kbrd_user_embeddings(model, batch["context_entities"])
        loss, scores = model.recommend(batch, "test")
    assert users[0].abs().sum() > 0 and users[1].abs().sum() > 0
    assert not torch.allclose(users[0], users[1])  # depends on the context
    assert torch.count_nonzero(users[2]) == 0  # no entities -> zero user
    assert scores.shape == (3, helpers.N_ENTITY) and torch.isfinite(loss)
    assert not torch.allclose(scores[0], scores[1])


def test_conv_evaluator_takes_language(unpatched):
    assert unpatched["conv_evaluator"]["error"] == "TypeError"

    from crslab.evaluator import get_evaluator
    from crslab_mscrs.compat.evaluators import FixedConvEvaluator
    evaluator = get_evaluator("conv", "ReDial")
    assert isinstance(evaluator, FixedConvEvaluator) and evaluator.language == "en"
    evaluator.gen_evaluate("you should watch @123", ["have you seen @123 ?"])
    report = evaluator.report(mode="test")
    assert report["item_ratio"] == 1.0 and "hit@1" not in report


def test_standard_evaluator_counts_word_ngrams(unpatched):
    # the wheel counts characters of "movie movie movie": m, o, v, i, e, space = 6
    assert unpatched["standard_dist"]["value"] == 6.0

    import crslab.evaluator
    import crslab.evaluator.standard
    from crslab_mscrs.compat.evaluators import FixedStandardEvaluator
    assert crslab.evaluator.Evaluator_register_table["standard"] is FixedStandardEvaluator
    assert crslab.evaluator.standard.StandardEvaluator is FixedStandardEvaluator
    evaluator = crslab.evaluator.get_evaluator("standard", "ReDial")
    evaluator.gen_evaluate("movie movie movie", ["a movie"])
    evaluator.gen_evaluate("a good movie", ["a movie"])
    evaluator.rec_evaluate([3, 1, 2], 1)
    report = evaluator.report()
    assert report["dist@1"] == pytest.approx(3 / 2)  # {movie, a, good} / 2 replies
    assert report["dist_ratio@1"] == pytest.approx(3 / 6)
    assert report["dist@2"] == pytest.approx(3 / 2)  # {movie movie, a good, good movie}
    assert report["hit@1"] == 0.0
    report_again = evaluator.report()  # reporting twice does not re-average corpus metrics
    assert report_again["dist@1"] == report["dist@1"]
    evaluator.reset_metrics()
    assert evaluator.replies == [] and evaluator.report() == {}


# 9 ------------------------------------------------------------------------- R-GCN speed
def test_featureless_rgcn_matches_pyg_forward_and_gradients():
    from torch_geometric.nn import RGCNConv

    from crslab_mscrs.compat import rgcn_featureless

    torch.manual_seed(0)
    n_nodes, n_relations = 30, 5
    edge_index = torch.randint(0, n_nodes, (2, 120))
    edge_type = torch.randint(0, n_relations, (120,))
    conv = RGCNConv(n_nodes, 8, n_relations, num_bases=3)
    assert RGCNConv.forward is rgcn_featureless.forward  # installed by crslab_mscrs.compat
    upstream = rgcn_featureless._original_forward

    def output_and_gradients(forward):
        conv.zero_grad()
        out = forward(conv, None, edge_index, edge_type)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), [p.grad.clone() for p in conv.parameters()]

    expected, expected_grads = output_and_gradients(upstream)
    got, got_grads = output_and_gradients(RGCNConv.forward)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        torch.testing.assert_close(got_grad, expected_grad, rtol=1e-5, atol=1e-6)
    # nodes without in-edges get only the self-connection and bias, as in PyG
    isolated = sorted(set(range(n_nodes)) - set(edge_index[1].tolist()))
    if isolated:
        torch.testing.assert_close(got[isolated], (conv.root + conv.bias)[isolated].detach())


def test_rgcn_with_node_features_keeps_pyg_path():
    from torch_geometric.nn import RGCNConv

    from crslab_mscrs.compat import rgcn_featureless

    torch.manual_seed(0)
    conv = RGCNConv(4, 6, 2, num_bases=2)
    features = torch.randn(10, 4)
    edge_index = torch.randint(0, 10, (2, 25))
    edge_type = torch.randint(0, 2, (25,))
    torch.testing.assert_close(conv(features, edge_index, edge_type),
                               rgcn_featureless._original_forward(conv, features, edge_index, edge_type))


# ------------------------------------------------------------------------- whole layer
def test_apply_is_idempotent():
    import sys as _sys

    import crslab.evaluator
    from crslab.evaluator.metrics.base import Metric
    from crslab.model.crs.inspired.inspired_conv import InspiredConvModel
    from crslab.model.crs.kbrd.kbrd import KBRDModel
    from crslab.system.utils.lr_scheduler import ReduceLROnPlateau
    from torch_geometric.nn import RGCNConv
    from transformers.utils.import_utils import _LazyModule
    transformer = importlib.import_module("crslab.model.utils.modules.transformer")

    def snapshot():
        return (_LazyModule.__getattr__, Metric.as_number.__func__, transformer.create_position_codes,
                KBRDModel.encode_user, InspiredConvModel.converse, RGCNConv.forward, ReduceLROnPlateau.__init__,
                dict(crslab.evaluator.Evaluator_register_table),
                sum(getattr(f, "crslab_mscrs_finder", False) for f in _sys.meta_path))

    before = snapshot()
    compat.apply()  # no-op
    compat._applied = False
    compat.apply()  # every patch re-checks its own marker
    assert compat.applied()
    assert snapshot() == before
    assert before[-1] == 1


def test_crslab_packages_import_after_crslab_mscrs(patched_fresh):
    assert patched_fresh["imported"] == ["crslab.system", "crslab.evaluator", "crslab.model"]
    assert patched_fresh["applied"] is True


def test_kgsf_builds_with_fixed_position_codes(tmp_path, monkeypatch):
    kgsf = importlib.import_module("crslab.model.crs.kgsf.kgsf")

    helpers.write_kgsf_copy_mask(tmp_path)
    monkeypatch.setattr(kgsf, "MODEL_PATH", str(tmp_path))
    torch.manual_seed(0)
    model = kgsf.KGSFModel(helpers.tiny_kgsf_opt(learn_positional_embeddings=False), torch.device("cpu"),
                           helpers.tiny_vocab(), helpers.tiny_kgsf_side_data())
    assert model.conv_encoder.position_embeddings.weight.requires_grad is False
    batch = (torch.tensor([[1, 2], [3, 0]]), torch.tensor([[1, 2], [3, 0]]),
             torch.zeros(2, helpers.N_ENTITY), torch.tensor([4, 4]))
    with torch.no_grad():
        rec_loss, info_loss, scores = model.recommend(batch, "test")
    assert scores.shape == (2, helpers.N_ENTITY) and torch.isfinite(rec_loss) and info_loss is None


def test_fixed_evaluator_reports_embedding_metrics_when_vectors_exist(monkeypatch):
    from crslab_mscrs.compat import evaluators

    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    monkeypatch.setattr(evaluators, "word_vectors_for", lambda language: (vectors.get, "test vectors"))
    evaluator = evaluators.FixedStandardEvaluator("en")
    evaluator.gen_evaluate("a", ["a"])
    evaluator.gen_evaluate("a", ["b"])
    report = evaluator.report()
    assert report["greedy"] == pytest.approx(0.5)
    assert report["average"] == pytest.approx(0.5) and report["extreme"] == pytest.approx(0.5)
