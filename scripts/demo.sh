#!/usr/bin/env bash
# The demo: Fashion-MNIST from Debian's dataset-fashion-mnist, pretrain W1 on
# classes 0-4, then fine-tune on classes 5-9 with the convolutions frozen and
# a fresh head, each with 2 MPI ranks. Run from the repository root (make demo).
set -euo pipefail
cd "$(dirname "$0")/.."
FTUNE=${FTUNE:-build/ftune}
SRC=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
NP=${NP:-2}

for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
         t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    if [ ! -r "$SRC/$f" ]; then
        echo "demo: $SRC/$f not found; install Debian's dataset-fashion-mnist" \
             "(scripts/install-deps.sh) or set FASHION_MNIST_DIR" >&2
        exit 2
    fi
done

mkdir -p data
convert() { # name split classes
    local out="data/fmnist-$1-$2.h5" img lab
    if [ "$2" = train ]; then img=train-images-idx3-ubyte.gz lab=train-labels-idx1-ubyte.gz
    else img=t10k-images-idx3-ubyte.gz lab=t10k-labels-idx1-ubyte.gz; fi
    [ -s "$out" ] || "$FTUNE" data import-idx --images "$SRC/$img" --labels "$SRC/$lab" \
        --classes "$3" -o "$out"
}
echo "== converting Fashion-MNIST (classes 0-4 for pretraining, 5-9 for fine-tuning)"
convert pretrain train 0,1,2,3,4
convert pretrain test 0,1,2,3,4
convert finetune train 5,6,7,8,9
convert finetune test 5,6,7,8,9

rm -rf runs/fmnist-pretrain runs/fmnist-finetune
echo
echo "== pretraining W1 on classes 0-4 ($NP ranks)"
scripts/mpirun.sh "$NP" "$FTUNE" train configs/fmnist-pretrain.cfg
echo
echo "== fine-tuning on classes 5-9: convolutions frozen, new head ($NP ranks)"
scripts/mpirun.sh "$NP" "$FTUNE" train configs/fmnist-finetune.cfg
echo
echo "== the fine-tuned model"
"$FTUNE" inspect runs/fmnist-finetune/model.h5
"$FTUNE" eval runs/fmnist-finetune/model.h5 --data data/fmnist-finetune-test.h5
