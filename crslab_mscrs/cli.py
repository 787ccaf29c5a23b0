"""Command line entry point (``crslab-mscrs`` / ``python run_crslab.py``), flag-compatible with CRSLab's.

    crslab-mscrs --config mscrs/sample [-g 0] [--seed 1] [--data-root DIR]   # train + evaluate
    python run_crslab.py --config config/kbrd/redial.yaml                    # the same, by path
    crslab-mscrs build-data --source RAW_DATA_FOLDER     # datasets (crslab_mscrs.commands.build_data)
    crslab-mscrs features all --config features/redial_offline --source RAW_DATA_FOLDER
    crslab-mscrs config [NAME]                           # list / show composed configs

``--config`` takes a packaged config name (``mscrs/redial``; found from any directory) or a
YAML file (which may ``extends:`` a packaged one; see :mod:`crslab_mscrs.config`). CRSLab's
flags keep their meaning (``-c/--config -g/--gpu -sd -rd -ss -rs -d -i -tb``); ours add the
data root, seeds, ``--set key=value`` overrides and the files that the benchmark harness reads
(``--rankings-out``, ``--metrics-out``). The console log is INFO (the config dump at DEBUG, ``-d``
shows it) on stderr, coloured and with progress bars only on a terminal.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

#: subcommand -> module of crslab_mscrs.commands (``run`` is the default: CRSLab's flags)
SUBCOMMANDS = {"build-data": "build_data", "features": "features", "config": "show_config"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train and evaluate a CRS with CRSLab + crslab-mscrs. Other commands: "
                    + ", ".join(f"`crslab-mscrs {name} -h`" for name in SUBCOMMANDS) + ".")
    p.add_argument("-c", "--config", required=True,
                   help="packaged config name (mscrs/sample, kbrd/redial; `crslab-mscrs config` lists them) "
                        "or YAML file")
    p.add_argument("-g", "--gpu", default="auto",
                   help="CRSLab GPU list ('-1' CPU, '0', '0,1'); 'auto' = GPU 0 when CUDA is available")
    p.add_argument("-sd", "--save_data", action="store_true", help="save the processed dataset")
    p.add_argument("-rd", "--restore_data", action="store_true", help="restore the processed dataset")
    p.add_argument("-ss", "--save_system", action="store_true", help="save the trained system")
    p.add_argument("-rs", "--restore_system", action="store_true",
                   help="restore the saved system (MSCRS: resume a killed run from its last finished epoch)")
    p.add_argument("-d", "--debug", action="store_true", help="train on the valid split (CRSLab debug mode)")
    p.add_argument("-i", "--interact", action="store_true", help="chat with the system")
    p.add_argument("-tb", "--tensorboard", action="store_true", help="log to tensorboard")
    p.add_argument("--data-root", default=None,
                   help="data root (overrides config key data_root and $CRSLAB_MSCRS_DATA; 'sample' = embedded sample)")
    p.add_argument("--save-dir", default=None, help="checkpoint folder (default ./save)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides config key seed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set rec.epoch=1 (repeatable)")
    p.add_argument("--rankings-out", default=None, help="write test rankings.jsonl here")
    p.add_argument("--metrics-out", default=None, help="write test metrics.json here")
    return p


def resolve_gpu(flag: str) -> str:
    if flag != "auto":
        return flag
    import torch

    return "0" if torch.cuda.is_available() else "-1"


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def configure_logging(log_file: Optional[Path], debug: bool, stream=None) -> None:
    """loguru sinks: ``log_file`` (CRSLab's ``log/<name>.log``) and the console (stderr through
    ``tqdm.write`` so progress bars stay intact), INFO (DEBUG with ``-d``), ANSI colours only
    when the console is a terminal."""
    from loguru import logger
    from tqdm import tqdm

    from crslab_mscrs.training import distributed

    stream = stream or sys.stderr
    level = "DEBUG" if debug else "INFO"
    logger.remove()
    if not distributed.is_writer():  # torchrun: rank 0 logs, the others report errors only
        logger.add(lambda msg: tqdm.write(msg, end="", file=stream), level="ERROR")
        return
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        logger.add(str(log_file), level=level)
    isatty = getattr(stream, "isatty", None)
    logger.add(lambda msg: tqdm.write(msg, end="", file=stream), level=level,
               colorize=bool(isatty and isatty()))


def make_crslab_config(opt: dict, gpu: str, debug: bool):
    """A ``crslab.config.Config`` holding an already composed and validated dict.

    Does what CRSLab's ``Config.__init__`` does (gpu list, ``model_name``, the log file under
    ``./log``) except its logging: :func:`configure_logging`, the config dump at DEBUG level.
    """
    import json
    import os

    from crslab.config import Config
    from loguru import logger

    config = Config.__new__(Config)
    config.opt = dict(opt)
    from crslab_mscrs.training import distributed

    if not distributed.current().enabled:  # under torchrun each rank uses cuda:LOCAL_RANK of all GPUs
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    config.opt["gpu"] = [int(g) for g in gpu.split(",")]
    model_name = opt.get("model") or "_".join(
        opt[key] for key in ("rec_model", "conv_model", "policy_model") if opt.get(key))
    config.opt["model_name"] = model_name
    log_name = opt.get("log_name") or f"{opt['dataset']}_{model_name}_{time.strftime('%Y-%m-%d-%H-%M-%S')}"
    configure_logging(Path("log") / f"{log_name}.log", debug)
    logger.info(f"[Dataset: {opt['dataset']} tokenized in {opt['tokenize']}] [Model: {model_name}]")
    logger.debug("[Config]\n" + json.dumps(config.opt, indent=4, default=str))
    return config


def build_system(opt: dict, data_root=None, save_dir=None, gpu: str = "-1", debug: bool = False,
                 restore_data: bool = False, save_data: bool = False, restore_system: bool = False,
                 interact: bool = False, tensorboard: bool = False):
    """CRSLab dataset, loaders and system for a loaded config ``opt`` (what ``run`` trains).

    ``data_root`` / ``save_dir`` override the config's; ``opt['data_root']`` is set to the
    root used. Returns ``(system, dataset)``.
    """
    import crslab_mscrs  # noqa: F401  (compat layer + registration)
    from crslab.data import get_dataloader, get_dataset
    from crslab.system import get_system

    from crslab_mscrs import paths, registry
    from crslab_mscrs.prerequisites import require_built_dataset, require_kgsf_copy_mask

    root = paths.resolve_data_root(data_root, opt["data_root"])
    paths.set_data_root(root, save_dir or opt["save_dir"])
    registry.register_custom_datasets(root)  # user datasets built under this root (docs/own_data.md)
    opt["data_root"] = str(root)
    require_built_dataset(root, opt["dataset"], opt["tokenize"])
    if opt.get("model") == "KGSF":
        require_kgsf_copy_mask(root, opt["dataset"])
    config = make_crslab_config(opt, gpu, debug)
    dataset = get_dataset(config, config["tokenize"], restore_data, save_data)
    loaders = [get_dataloader(config, split, dataset.vocab)
               for split in (dataset.train_data, dataset.valid_data, dataset.test_data)]
    system = get_system(config, *loaders, dataset.vocab, dataset.side_data, restore_system,
                        interact, debug, tensorboard)
    return system, dataset


def run(args: argparse.Namespace) -> dict:
    from crslab_mscrs.config import ConfigError, load_config
    from crslab_mscrs.compat.stage_selection import select_stages
    from crslab_mscrs.compat.prediction_capture import attach_test_capture, write_outputs
    from crslab_mscrs.training.checkpoint import seed_everything
    from crslab_mscrs.batches.dataloader import load_item_names
    from crslab_mscrs.training import distributed

    opt = load_config(args.config, args.overrides)
    if args.seed is not None:
        opt["seed"] = args.seed
    seed_everything(int(opt["seed"]))
    for key, value in (("rankings_out", args.rankings_out), ("metrics_out", args.metrics_out)):
        if value:
            opt[key] = str(Path(value).resolve())
    started = time.time()
    gpu = resolve_gpu(args.gpu)
    if distributed.launched_by_torchrun():  # one process per device: cuda:LOCAL_RANK, or CPU with gloo
        shard = distributed.init_from_env(use_cuda=gpu != "-1" and torch_cuda_available())
        gpu = str(shard.local_rank) if gpu != "-1" and torch_cuda_available() else "-1"
    system, dataset = build_system(opt, args.data_root, args.save_dir, gpu, args.debug,
                                   args.restore_data, args.save_data, args.restore_system, args.interact,
                                   args.tensorboard)
    if args.interact:
        system.interact()
        return {}
    capture = None
    if distributed.current().enabled and not getattr(system, "writes_own_outputs", False):
        raise ConfigError(f"torchrun trains MSCRS and UniCRS only; run {opt['model']} as one process "
                          "(python run_crslab.py ...)")
    if not getattr(system, "writes_own_outputs", False):  # CRSLab's own systems (KBRD, KGSF, ...)
        if opt["stages"] is not None:
            select_stages(system, opt["stages"])
        capture = attach_test_capture(system, dataset.side_data["item_entity_ids"])
    from contextlib import nullcontext

    from crslab_mscrs.compat.epoch_count import EpochCounter

    epochs = EpochCounter()  # what CRSLab's own loops ran (they may stop early); ours record it themselves
    with epochs if capture is not None else nullcontext():
        results = system.fit()
    if args.save_system:
        system.save_model()
    if capture is not None:
        write_outputs(capture, dataset.test_data, opt["rankings_out"], opt["metrics_out"],
                      extra={"model": opt["model"], "dataset": opt["dataset"], "seed": opt["seed"],
                             "stages_run": opt["stages"] or "all",
                             "scale": opt["scale"], "wall_time_s": round(time.time() - started, 1),
                             "stages": epochs.stages_summary(
                                 {stage: (opt.get(stage) or {}).get("epoch") for stage in ("pretrain", "rec", "conv")})},
                      scale=float(opt["scale"]), item_names=load_item_names(opt).values())
        return {"test": capture.metrics}
    # our own systems return {stage: {"test": {...}, ...}}; pre-training is never a result
    return {stage: summary["test"] for stage, summary in (results or {}).items()
            if isinstance(summary, dict) and "test" in summary and stage != "pretrain"}


def run_subcommand(name: str, argv: List[str]) -> int:
    """``crslab-mscrs build-data|features|config ...`` (modules of :mod:`crslab_mscrs.commands`)."""
    import importlib

    module = importlib.import_module(f"crslab_mscrs.commands.{SUBCOMMANDS[name]}")
    parser = argparse.ArgumentParser(prog=f"crslab-mscrs {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return module.main(module.add_arguments(parser).parse_args(argv))


def quiet_when_not_a_terminal(stream=None) -> None:
    """No progress bars when the console is not a terminal (log files, CI); ``TQDM_DISABLE=0``
    keeps them. (tqdm reads that variable at its import, before this runs: set the default.)"""
    import os
    from functools import partialmethod

    from tqdm import tqdm

    stream = stream or sys.stderr
    if os.environ.get("TQDM_DISABLE") is None and not (hasattr(stream, "isatty") and stream.isatty()):
        tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_when_not_a_terminal()
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:])
    if argv and argv[0] == "run":  # ``crslab-mscrs run --config ...`` = ``crslab-mscrs --config ...``
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    from crslab_mscrs.config import ConfigError
    from crslab_mscrs.model.loading import ModelLoadError
    from crslab_mscrs.prerequisites import MissingPrerequisite
    from crslab_mscrs.graphs.storage import StaleArtifactError
    from crslab_mscrs.training.checkpoint import CheckpointError
    from crslab_mscrs.training.run_lock import RunFolderLocked

    from crslab_mscrs.training import distributed

    try:
        metrics = run(args)
    except (ConfigError, ModelLoadError, MissingPrerequisite, StaleArtifactError, CheckpointError,
            RunFolderLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    if metrics and distributed.is_writer():
        print(format_metrics_table(metrics))
    return 0


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif value is None:
        out[prefix] = "n/a"
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        out[prefix] = value


def format_metrics_table(metrics: dict) -> str:
    """Test metrics as an aligned two-column table, one block per stage."""
    lines = []
    for stage, values in metrics.items():
        flat: dict = {}
        _flatten("", values, flat)
        if not flat:
            continue
        width = max(len(name) for name in flat)
        lines.append(f"== test metrics: {stage} ==")
        lines += [f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}"
                  for name, value in flat.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
