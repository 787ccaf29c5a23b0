"""Fixed ``standard`` and ``conv`` evaluators, registered in place of CRSLab's.

Fixes in the CRSLab 0.1.2 wheel:

* ``crslab/evaluator/standard.py:79`` (and ``conv.py:65``): ``gen_evaluate`` receives
  the reply as a STRING and feeds it to ``nltk.ngrams``, so ``dist@k`` counts CHARACTER
  n-grams. Here replies are split into words and Dist-n is given in both conventions.
* ``crslab/evaluator/__init__.py:29`` calls ``ConvEvaluator(language, tensorboard=...)`` but
  ``conv.py:36`` takes no ``language``: TypeError (multiple values for ``tensorboard``).
* ``standard.py:45,54-61`` downloads fastText vectors from dead links (and ``build`` deletes the
  folder on a version mismatch) and needs the ``fasttext`` package: here real vectors are
  used only when present, else greedy/average/extreme are absent from the report ("n/a").

Generation metrics come from :mod:`crslab_mscrs.evaluation.generation`. Report keys:
``f1``, ``bleu@1..4`` (smoothed), ``rouge@1``, ``rouge@2``, ``rouge@L``, ``item_ratio``,
``dist@1..4`` (distinct word n-grams / replies, CRSLab's name and convention),
``dist_ratio@1..4`` (distinct / total n-grams), ``greedy``/``average``/``extreme`` (only with
real vectors), plus ``ppl`` that systems add themselves. Recommendation metrics
(``hit/ndcg/mrr@1,10,50``) are CRSLab's, unchanged. ``report`` also RETURNS the values.
"""
from __future__ import annotations

import time
from typing import Dict, List

from loguru import logger

from crslab.evaluator.base import BaseEvaluator
from crslab.evaluator.metrics.base import AverageMetric, Metrics, aggregate_unnamed_reports
from crslab.evaluator.metrics.gen import F1Metric
from crslab.evaluator.metrics.rec import HitMetric, MRRMetric, NDCGMetric
from crslab.evaluator.utils import nice_report

from ..evaluation import generation
from ..evaluation.embedding import load_fasttext_vectors
from ._patching import mark, rebind_everywhere

MAX_NGRAM = 4
RANK_CUTOFFS = (1, 10, 50)
_word_vector_cache: Dict[tuple, tuple] = {}


def word_vectors_for(language: str):
    """Real fastText vectors for ``language`` under CRSLab's ``EMBEDDING_PATH``, cached; or (None, why)."""
    import crslab.config

    key = (language, crslab.config.EMBEDDING_PATH)
    if key not in _word_vector_cache:
        _word_vector_cache[key] = load_fasttext_vectors(language, crslab.config.EMBEDDING_PATH)
    return _word_vector_cache[key]


def _set_metric(metrics: Metrics, key: str, value: float) -> None:
    """Overwrite a corpus-level metric (``Metrics.add`` would average it with an older value)."""
    metrics._data.pop(key, None)  # Metrics has no public setter
    metrics.add(key, AverageMetric(value))


class FixedStandardEvaluator(BaseEvaluator):
    """CRSLab's ``standard`` evaluator (recommendation + generation + optimisation metrics), fixed."""

    sections = ("Recommendation Metrics", "Generation Metrics", "Optimization Metrics")

    def __init__(self, language: str = "en", tensorboard: bool = False):
        super().__init__()
        self.language = language
        self.rec_metrics = Metrics()
        self.gen_metrics = Metrics()
        self.optim_metrics = Metrics()
        self.replies: List[List[str]] = []
        self.word_vectors, reason = word_vectors_for(language)
        if self.word_vectors is None:
            logger.info(f"[Embedding metrics (greedy/average/extreme) n/a: {reason}]")
        self.tensorboard = tensorboard
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir='runs/' + time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime()))

    def rec_evaluate(self, ranks, label):
        for k in RANK_CUTOFFS:
            if len(ranks) >= k:
                self.rec_metrics.add(f"hit@{k}", HitMetric.compute(ranks, label, k))
                self.rec_metrics.add(f"ndcg@{k}", NDCGMetric.compute(ranks, label, k))
                self.rec_metrics.add(f"mrr@{k}", MRRMetric.compute(ranks, label, k))

    def gen_evaluate(self, hyp: str, refs: List[str]):
        """Score one generated reply (space-separated tokens, as CRSLab's ``ind2txt`` makes them).

        Every reply counts, an empty one included (it scores 0 and adds no n-gram).
        """
        hypothesis = hyp.split()
        references = [ref.split() for ref in refs]
        self.gen_metrics.add("f1", F1Metric.compute(hyp, refs))
        for n in range(1, MAX_NGRAM + 1):
            self.gen_metrics.add(f"bleu@{n}", AverageMetric(generation.bleu(hypothesis, references, n)))
        self.gen_metrics.add("rouge@1", AverageMetric(generation.rouge_n(hypothesis, references, 1)))
        self.gen_metrics.add("rouge@2", AverageMetric(generation.rouge_n(hypothesis, references, 2)))
        self.gen_metrics.add("rouge@L", AverageMetric(generation.rouge_l(hypothesis, references)))
        self.gen_metrics.add("item_ratio", AverageMetric(generation.item_ratio([hypothesis])))
        scores = generation.embedding_metrics(hypothesis, references, self.word_vectors)
        for name, value in (scores or {}).items():
            self.gen_metrics.add(name, AverageMetric(value))
        self.replies.append(hypothesis)

    def _add_corpus_metrics(self) -> None:
        if not self.replies:
            return
        for n in range(1, MAX_NGRAM + 1):
            dist = generation.distinct(self.replies, n)
            _set_metric(self.gen_metrics, f"dist@{n}", dist["dist_per_reply"])
            _set_metric(self.gen_metrics, f"dist_ratio@{n}", dist["dist_ratio"])

    def _reports(self):
        return [self.rec_metrics.report(), self.gen_metrics.report(), self.optim_metrics.report()]

    def report(self, epoch=-1, mode='test') -> Dict[str, float]:
        self._add_corpus_metrics()
        reports = self._reports()
        if self.tensorboard and mode != 'test':
            for section, section_report in zip(self.sections, reports):
                for name, value in section_report.items():
                    self.writer.add_scalars(f'{section}/{name}', {mode: value.value()}, epoch)
        merged = aggregate_unnamed_reports(reports)
        logger.info('\n' + nice_report(merged))
        return {name: metric.value() for name, metric in merged.items()}

    def reset_metrics(self):
        self.rec_metrics.clear()
        self.gen_metrics.clear()
        self.optim_metrics.clear()
        self.replies.clear()


class FixedConvEvaluator(FixedStandardEvaluator):
    """CRSLab's ``conv`` evaluator (generation + optimisation metrics), fixed; takes ``language``."""

    sections = ("Generation Metrics", "Optimization Metrics")

    def rec_evaluate(self, ranks, label):
        """The conversation evaluator ignores recommendation results, as CRSLab's does."""

    def _reports(self):
        return [self.gen_metrics.report(), self.optim_metrics.report()]


mark(FixedStandardEvaluator, "evaluators")
mark(FixedConvEvaluator, "evaluators")
FIXED_EVALUATORS = {"standard": FixedStandardEvaluator, "conv": FixedConvEvaluator}
ORIGINAL_EVALUATORS: Dict[str, type] = {}


def install() -> None:
    """Mutate ``Evaluator_register_table`` and rebind every ``crslab.*`` reference to the old classes."""
    import crslab.evaluator

    table = crslab.evaluator.Evaluator_register_table
    for name, fixed in FIXED_EVALUATORS.items():
        original = table[name]
        if original is fixed:
            continue
        ORIGINAL_EVALUATORS.setdefault(name, original)
        table[name] = fixed
        rebind_everywhere(original, fixed)
