"""A pip user's install: the wheel holds the configs and the sample, and ``crslab-mscrs`` runs
the embedded sample from a directory outside the repository.

The wheel is built from a copy of the sources (nothing is written into the checkout) and
installed with ``--no-deps --no-index`` into a fresh venv that reuses this interpreter's
installed dependencies through a ``.pth`` line (offline: torch is not downloaded again).
"""
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--set", "pretrain.max_batches_per_epoch=2", "--set", "rec.max_batches_per_epoch=2",
         "--set", "conv.max_batches_per_epoch=2", "--set", "max_new_tokens=4"]


def run(cmd, cwd, timeout=600):
    env = {key: value for key, value in __import__("os").environ.items() if key not in ("PYTHONPATH",)}
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def build_wheel(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "crslab_mscrs", src / "crslab_mscrs",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", tmp_path / "dist", src], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("crslab_mscrs-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_runs_the_sample_from_outside_the_repository(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "crslab_mscrs/configs/mscrs/base.yaml" in names and "crslab_mscrs/configs/features/base.yaml" in names
    assert "crslab_mscrs/commands/features.py" in names and "crslab_mscrs/commands/build_data.py" in names
    assert any(name.startswith("crslab_mscrs/sample/dataset/redial/") for name in names)

    venv = tmp_path / "venv"
    run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv], cwd=tmp_path)
    python, script = venv / "bin" / "python", venv / "bin" / "crslab-mscrs"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=tmp_path).stdout.strip())
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    (purelib / "reuse_installed_deps.pth").write_text("\n".join(deps) + "\n")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([python, "-c", "import crslab_mscrs; print(crslab_mscrs.__file__)"], cwd=elsewhere).stdout
    assert Path(where.strip()).is_relative_to(venv), where  # the installed wheel, not the checkout
    assert "mscrs/sample" in run([script, "config"], cwd=elsewhere).stdout.split()
    result = run([script, "--config", "mscrs/sample", "--metrics-out", "out/metrics.json", *SHORT], cwd=elsewhere)
    assert (elsewhere / "out" / "metrics.json").is_file() and "== test metrics: rec ==" in result.stdout
    (run_dir,) = (elsewhere / "save").iterdir()
    assert run_dir.name.startswith("ReDial_MSCRS_seed0_") and (run_dir / "run_config.yaml").is_file()
    assert "FutureWarning" not in result.stderr and "\x1b[" not in result.stderr  # quiet, no colours
    assert "[Config]" not in result.stderr and "it/s]" not in result.stderr  # config dump at DEBUG, no bars
