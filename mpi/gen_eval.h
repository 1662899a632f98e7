/* ftune generate --data: generation over a dataset's prompts, scored against its targets. */
#ifndef FTUNE_MPI_GEN_EVAL_H
#define FTUNE_MPI_GEN_EVAL_H

#include "ftune/generate.h"
#include "ftune/tokenizer.h"

typedef struct ft_gen_eval_args {
    const char *model, *data, *json;
    ft_gen_opts o; /* stop_id: the end-of-text id in the model's (compact) ids */
    int batch;     /* prompts decoded together */
    long limit;    /* the first rows only; 0 = all */
    int show;      /* print this many examples */
} ft_gen_eval_args;

/* Generates for every prompt of a->data and prints BLEU-4, ROUGE-1/2/L F1 and exact match. */
int ft_gen_eval(ft_model *m, const ft_gen_eval_args *a, const ft_tokenizer *tok,
                const ft_vocab_map *map, ft_err *err);

#endif
