/* `ftune inspect`: what a model or checkpoint file holds (single process, no MPI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/adapter.h"
#include "ftune/freeze.h"
#include "ftune/h5io.h"

#include "commands.h"

static const char inspect_usage[] =
    "usage: ftune inspect FILE [--json | --config]\n"
    "\n"
    "Shows what a model or checkpoint file holds: format and ftune version, when it was\n"
    "written, the input shape, every layer with its type, output shape, trainable/frozen\n"
    "state and parameter shapes, the totals, and for a checkpoint the optimizer and the\n"
    "training state (step, epoch, best metric). The parameter checksum is verified; a\n"
    "mismatch is reported after the summary and the exit status is 2. For a LoRA adapter\n"
    "file the base model it references is loaded and its fingerprint checked: a missing\n"
    "or changed base model is reported and the exit status is 2.\n"
    "\n"
    "  --json      print the same as one JSON object\n"
    "  --config    print the configuration stored in the file (reusable as a config file)\n"
    "  -h, --help  show this help\n"
    "\n"
    "File layout: docs/formats.md.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ftune inspect: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'ftune inspect --help')\n");
    return 2;
}

/* An adapter file: its base model must be there and unchanged (loads both). */
static int check_base(const char *path, int json, ft_err *err)
{
    ft_base_ref ref;
    int found;
    int rc = ft_read_base_ref(path, &ref, &found, err);
    if (rc || !found)
        return rc;
    char *text = NULL;
    ft_config cfg;
    ft_model m;
    memset(&cfg, 0, sizeof cfg);
    memset(&m, 0, sizeof m);
    rc = ft_load_config_text(path, &text, err);
    if (!rc)
        rc = ft_config_load_string(&cfg, text, path, err);
    if (!rc)
        rc = ft_config_build_model(&cfg, &m, err);
    if (!rc)
        rc = ft_load_model_file(&cfg, path, &m, NULL, NULL, err);
    if (!rc && !json)
        printf("base check      ok: the base model is there and unchanged\n");
    ft_model_free(&m);
    ft_config_free(&cfg);
    free(text);
    return rc;
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, config = 0, options = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(inspect_usage, stdout);
            return 0;
        } else if (options && !strcmp(a, "--json")) {
            json = 1;
        } else if (options && !strcmp(a, "--config")) {
            config = 1;
        } else if (options && !strcmp(a, "--")) {
            options = 0; /* a file name may start with '-' after this */
        } else if (options && a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (path) {
            return usage_error("unexpected argument '%s': give one file", a);
        } else {
            path = a;
        }
    }
    if (!path)
        return usage_error("%s", "missing FILE");
    if (json && config)
        return usage_error("%s", "--json and --config cannot be combined");

    ft_err err = {0};
    int rc;
    if (config) {
        char *text = NULL;
        rc = ft_load_config_text(path, &text, &err);
        if (!rc) {
            fputs(text, stdout);
            if (text[0] && text[strlen(text) - 1] != '\n')
                fputc('\n', stdout);
        }
        free(text);
    } else {
        rc = json ? ft_inspect_json(path, stdout, &err) : ft_inspect(path, stdout, &err);
        if (!rc)
            rc = check_base(path, json, &err);
    }
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "ftune inspect: %s\n", err.msg);
        return rc == FT_EINPUT ? 2 : 1;
    }
    if (ferror(stdout)) {
        fprintf(stderr, "ftune inspect: cannot write the output\n");
        return 1;
    }
    return 0;
}
