"""The data root: CRSLab's path globals follow it, nothing is written into site-packages."""
import importlib
import subprocess
import sys
from pathlib import Path

import crslab_mscrs  # noqa: F401
from crslab_mscrs import paths


def test_precedence_explicit_then_config_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "env"))
    assert paths.resolve_data_root(str(tmp_path / "cli"), str(tmp_path / "cfg")) == tmp_path / "cli"
    assert paths.resolve_data_root(None, str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert paths.resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv(paths.ENV_VAR)
    monkeypatch.chdir(tmp_path)
    assert paths.resolve_data_root() == tmp_path / "data"


def test_every_crslab_path_global_follows_the_root(tmp_path):
    import crslab.config as cfg
    import crslab.data.dataset.redial.redial as redial_module
    import crslab.system.base as system_base

    kgsf = importlib.import_module("crslab.model.crs.kgsf.kgsf")
    try:
        paths.set_data_root(tmp_path / "root", tmp_path / "save")
        assert cfg.DATASET_PATH == str(tmp_path / "root" / "dataset")
        assert redial_module.DATASET_PATH == str(tmp_path / "root" / "dataset")
        assert kgsf.MODEL_PATH == str(tmp_path / "root" / "model")
        assert system_base.SAVE_PATH == str(tmp_path / "save")
        site_packages = Path(cfg.__file__).resolve().parents[2]
        for name in ("SAVE_PATH", "DATA_PATH", "DATASET_PATH", "MODEL_PATH", "PRETRAIN_PATH", "EMBEDDING_PATH"):
            assert not getattr(cfg, name).startswith(str(site_packages))
    finally:
        paths.set_data_root(paths.resolve_data_root())


def test_importing_the_plugin_points_crslab_away_from_site_packages(tmp_path):
    code = ("import crslab_mscrs, crslab.config as c, crslab.data.dataset.inspired.inspired as i;"
            "print(c.DATASET_PATH); print(i.DATASET_PATH)")
    env = {**__import__("os").environ, paths.ENV_VAR: str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [str(tmp_path / "dataset")] * 2


def test_missing_crslab_prints_the_install_command():
    code = "import sys; sys.modules['crslab'] = None; import crslab_mscrs"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "pip install --no-deps crslab==0.1.2" in out.stderr
