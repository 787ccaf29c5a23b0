#!/usr/bin/env python
"""Your own item embeddings -> MSCRS's text or image kNN graph (docs/own_data.md, path 2).

    python data_prep/item_embeddings.py --dataset MiniFilms --modality text --vectors my_text.json --key item_id
    python data_prep/item_embeddings.py --dataset ReDial --modality image --vectors img.npy --ids img_ids.txt --key uri
    python data_prep/item_embeddings.py --dataset MiniFilms --modality text --check     # stale-input check

Writes <data_root>/features/<dataset>/<modality>_features.pt and <modality>_knn_graph.pt
(manifest entries with the sha256 of every input). Thin wrapper over
:mod:`crslab_mscrs.features.user_vectors`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="CRSLab dataset name (ReDial, Inspired or yours)")
    parser.add_argument("--modality", required=True, choices=("text", "image"))
    parser.add_argument("--vectors", help="JSON {key: [floats]} or a .npy [N, d] matrix (with --ids)")
    parser.add_argument("--ids", help=".json list or .txt (one key a line) naming the .npy rows")
    parser.add_argument("--key", choices=("item_id", "entity_id", "uri"),
                        help="what the keys are: your catalogue ids, entity ids, or entity2id keys (URIs)")
    parser.add_argument("--dim", type=int, default=None, help="expected vector size (checked)")
    parser.add_argument("--k", type=int, default=20, help="neighbours per item (paper: 20 ReDial, 10 INSPIRED)")
    parser.add_argument("--data-root", default=None, help="data root (default: $CRSLAB_MSCRS_DATA or ./data)")
    parser.add_argument("--encoder-name", default="user-supplied", help="recorded in the manifest")
    parser.add_argument("--out-dir", default=None,
                        help="features folder (default <data_root>/features/<dataset>; point the config's "
                             "features_dir at another one to keep both)")
    parser.add_argument("--check", action="store_true", help="only check the saved files against their inputs")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from crslab_mscrs import paths
    from crslab_mscrs.features.user_vectors import VectorFormatError, check_user_vectors, import_user_vectors
    from crslab_mscrs.graphs.storage import StaleArtifactError

    root = paths.resolve_data_root(args.data_root)
    out_dir = Path(args.out_dir) if args.out_dir else paths.features_dir(args.dataset, root)
    try:
        if args.check:
            check_user_vectors(out_dir, args.modality)
            print(f"{out_dir}: {args.modality} features and graph match their inputs")
            return 0
        if not args.vectors or not args.key:
            print("error: --vectors and --key are required (or --check)", file=sys.stderr)
            return 2
        report = import_user_vectors(args.vectors, paths.dataset_dir(args.dataset, root=root), out_dir,
                                     args.modality, args.key, args.ids, args.dim, args.k, args.encoder_name)
    except (VectorFormatError, StaleArtifactError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
