/* ftune: distributed fine-tuning of pre-trained networks. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ftune/version.h"

#include "commands.h"

static void usage(FILE *f)
{
    fputs("usage: ftune <command> [options]\n"
          "\n"
          "commands:\n"
          "  train CONFIG [--set key=value ...] [--resume [auto|CKPT]]\n"
          "                 train or fine-tune as the config says (run under mpirun for\n"
          "                 several ranks)\n"
          "  eval MODEL --data FILE [--json]\n"
          "                 evaluate a model or checkpoint on a dataset\n"
          "  generate MODEL --prompt TEXT --vocab VOCAB [...]\n"
          "                 continue a text with a causal language model\n"
          "  inspect FILE   layers, shapes, trainable/frozen, parameter counts, stored state\n"
          "  data import-idx|import-csv ...\n"
          "                 convert MNIST-style IDX or CSV files into ftune datasets\n"
          "  import keras|safetensors|hf ...\n"
          "                 turn a Keras .h5, a safetensors file or a Hugging Face\n"
          "                 GPT-2 / BERT checkpoint into an ftune model\n"
          "  export MODEL --format safetensors\n"
          "                 write a model with PyTorch names and layouts\n"
          "  report RUNDIR ...\n"
          "                 tabulate the final metrics of several runs\n"
          "\n"
          "  ftune <command> --help   options of one command\n"
          "  ftune --version\n"
          "\n"
          "exit codes: 0 success, 2 usage or input error, 1 runtime failure\n",
          f);
}

int main(int argc, char **argv)
{
    /* Past a file-size limit (ulimit -f, batch systems) write() fails with EFBIG instead of
     * the process being killed, so a checkpoint that does not fit is an error with a reason
     * and the previous checkpoint stays (docs/reliability.md). */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("ftune %s\n", FTUNE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate"))
        return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "data"))
        return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "report"))
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "ftune: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
