"""``crslab-mscrs config [NAME]``: the packaged configs, or one config composed.

    crslab-mscrs config                        # list the packaged configs
    crslab-mscrs config mscrs/sample --set rec.epoch=1   # the complete options, as YAML
    crslab-mscrs config mscrs/sample --sources           # ... with the file that set each key
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("name", nargs="?", help="packaged name (mscrs/redial) or YAML file; none: list them")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value, e.g. --set rec.epoch=1 (repeatable)")
    parser.add_argument("--sources", action="store_true", help="print the file that set each key instead")
    return parser


def main(args: argparse.Namespace) -> int:
    import yaml

    from crslab_mscrs.config import ConfigError, list_configs, resolve, validate

    if not args.name:
        print("\n".join(list_configs()))
        return 0
    try:
        composed = resolve(args.name, args.overrides)
        validate(composed.opt, composed)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"# {args.name}: {composed.chain_text()}")
    if args.sources:
        width = max(len(key) for key in composed.sources)
        print("\n".join(f"{key:<{width}}  {source}" for key, source in sorted(composed.sources.items())))
    else:
        print(yaml.safe_dump(composed.opt, sort_keys=False, default_flow_style=None), end="")
    return 0
