#!/bin/bash
# On the GPU machine: join the carried parts, check the archive's sha256, unpack it and install
# its wheels into /tmp/site (idempotent; the parts arrive over several calls, see README.md).
#   source benchmarks/device/unpack_payload.sh      # exports PYTHONPATH and CRSLAB_MSCRS_DATA
ROOT=$(pwd)
P=.device
U=${PAYLOAD_DIR:-/tmp/payload}
SITE=${SITE:-/tmp/site}
if [ ! -f "$SITE/.installed" ]; then
    have=$(ls "$P"/parts/ 2>/dev/null | wc -l); want=$(cat "$P/parts.count" 2>/dev/null)
    if [ "$have" != "$want" ]; then
        echo "payload incomplete: $have of ${want:-?} parts in $P/parts (carry the missing ones)" >&2
        return 1 2>/dev/null || exit 1
    fi
    rm -rf "$U" && mkdir -p "$U/files"
    cat "$P"/parts/part* > "$U/payload.tar"
    (cd "$U" && sha256sum -c "$ROOT/$P/payload.sha256") || { echo "payload sha256 mismatch" >&2; return 1 2>/dev/null || exit 1; }
    tar -C "$U/files" -xf "$U/payload.tar" && rm "$U/payload.tar"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" ${PIP_EXTRA:-} \
        "$U"/files/wheels/*.whl "$U"/files/big/*.whl || { return 1 2>/dev/null || exit 1; }
    touch "$SITE/.installed"
fi
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}
export CRSLAB_MSCRS_DATA=$U/files/data
export REDIAL_KG=$U/files/redial_kg/dbpedia_subkg.json
