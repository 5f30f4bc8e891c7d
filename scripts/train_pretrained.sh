#!/usr/bin/env bash
# Rebuilds the pretrained default model shipped as package data
# (src/lstmkit/data/pretrained/charlm_shakespeare.npz): the default settings of
# `lstmkit charlm train` on the bundled Shakespeare for 30 minutes of wall-clock
# time on 2 CPU cores, then the best checkpoint (weights only, no optimizer state).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf runs/default
.venv/bin/lstmkit charlm train --out runs/default --minutes 30
mkdir -p src/lstmkit/data/pretrained
cp runs/default/best.npz src/lstmkit/data/pretrained/charlm_shakespeare.npz
.venv/bin/lstmkit charlm eval src/lstmkit/data/pretrained/charlm_shakespeare.npz
