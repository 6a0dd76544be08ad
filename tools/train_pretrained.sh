#!/usr/bin/env bash
# Train the shipped CPU model and install it into the package (the command behind
# facegcn_lib/resources/facegcn_cpu.pt). About 60 minutes on 2 CPU cores.
#   bash tools/train_pretrained.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/cpu}"
OMP_NUM_THREADS=1 facegcn train --preset cpu --out "$out" --seed 0 --max-minutes 48 --quiet
python3 tools/export_pretrained.py "$out/model_best.pt" facegcn_lib/resources/facegcn_cpu.pt
