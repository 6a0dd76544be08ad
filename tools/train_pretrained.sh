#!/usr/bin/env bash
# Train the shipped CPU model and install it into the package (the command behind
# facegcn_lib/resources/facegcn_cpu.pt). About 60 minutes on 2 CPU cores.
#   bash tools/train_pretrained.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/cpu}"
facegcn train --preset cpu --out "$out" --seed 0 --quiet
python3 -m facegcn_lib.train.checkpoint --export "$out/model_best.pt" facegcn_lib/resources/facegcn_cpu.pt
