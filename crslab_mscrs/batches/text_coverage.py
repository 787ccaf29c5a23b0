"""Compare the MSCRS dataloader's two text sources on a built dataset, split by split.

    python -m crslab_mscrs.batches.text_coverage --dataset ReDial [--data-root data]

For each split it prints, for ``dialogue_text: ids`` (CRSLab's train-vocabulary ids,
detokenised) and ``dialogue_text: dataset`` (original words, :mod:`.source_text`), the share of
movie mentions masked by ``<movie>`` (:mod:`.movie_mentions`), how many samples read the
original words, and how many samples have the same context / response text both ways (all of
them on train, where every word is in the vocabulary).
"""
from __future__ import annotations

import argparse
import json
from typing import List, Optional


def compare_split(samples, vocab, dataset: str, tokenize: str = "nltk") -> dict:
    from crslab_mscrs.batches.dataloader import MSCRSDataLoader

    result, turns = {}, {}
    for mode in ("ids", "dataset"):
        loader = MSCRSDataLoader({"dataset": dataset, "tokenize": tokenize, "dialogue_text": mode}, samples, vocab)
        turns[mode] = loader.turns
        stats = loader.mask_stats
        found = stats.exact + stats.fuzzy
        result[mode] = {"mentions": found + stats.missing, "masked": found,
                        "masked_share": round(found / max(found + stats.missing, 1), 4),
                        "original_text_samples": sum(t.original_text for t in loader.turns),
                        "source": loader.source_text.path.name if loader.source_text else None}
    pairs = list(zip(turns["ids"], turns["dataset"]))
    result["samples"] = len(pairs)
    result["same_context"] = sum(a.context == b.context for a, b in pairs)
    result["same_response"] = sum((a.response, a.response_masked) == (b.response, b.response_masked)
                                  for a, b in pairs)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ReDial", help="CRSLab dataset name (ReDial, Inspired)")
    parser.add_argument("--tokenize", default="nltk")
    parser.add_argument("--data-root", default=None, help="data root (default: ./data, or $CRSLAB_MSCRS_DATA)")
    args = parser.parse_args(argv)

    import crslab.data

    from crslab_mscrs import paths

    paths.set_data_root(paths.resolve_data_root(args.data_root))
    dataset = crslab.data.dataset_register_table[args.dataset]({"dataset": args.dataset}, args.tokenize,
                                                               False, False)
    report = {split: compare_split(getattr(dataset, f"{split}_data"), dataset.vocab, args.dataset, args.tokenize)
              for split in ("train", "valid", "test")}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
