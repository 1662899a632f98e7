/* `ftune data`: dataset importers (single process, no MPI). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"

#include "commands.h"

#define MAX_KEEP 1024

static const char data_usage[] =
    "usage: ftune data <subcommand> [options]\n"
    "\n"
    "Subcommands:\n"
    "  import-idx   convert MNIST-style IDX files (plain or .gz) to an ftune dataset\n"
    "  import-csv   convert a CSV file (numeric features + integer label) to a dataset\n"
    "  import-text  tokenize TSV/CSV/JSONL text (+ label, or source + target) into a dataset\n"
    "  tokenize     print the token ids of text with a tokenizer (or --decode ids)\n"
    "\n"
    "Run 'ftune data <subcommand> --help' for its options. Dataset layout: docs/formats.md.\n";

static const char idx_usage[] =
    "usage: ftune data import-idx --images FILE --labels FILE -o OUT.h5 [options]\n"
    "\n"
    "Converts IDX images (unsigned bytes [N, rows, cols]) and labels ([N]), gzipped or\n"
    "not, to OUT.h5 with inputs float32 [N, 1, rows, cols] and labels int32 [N].\n"
    "\n"
    "  --images FILE     IDX image file (magic 0x803), e.g. train-images-idx3-ubyte.gz\n"
    "  --labels FILE     IDX label file (magic 0x801), e.g. train-labels-idx1-ubyte.gz\n"
    "  -o, --output OUT  dataset to write (written to OUT.tmp.<pid>, then renamed)\n"
    "  --classes LIST    keep only these classes, e.g. 5,6,7,8,9; they become 0..k-1 in\n"
    "                    the order given (default: keep all)\n"
    "  --scale S         multiply pixel values by S (default 1/255, giving [0, 1])\n"
    "  -h, --help        show this help\n";

static const char csv_usage[] =
    "usage: ftune data import-csv FILE -o OUT.h5 [options]\n"
    "\n"
    "Converts a CSV file of numeric feature columns and one integer label column to\n"
    "OUT.h5 with inputs float32 [N, features] and labels int32 [N]. The delimiter is\n"
    "the first of ',', ';' or tab on the first line; blank lines are skipped.\n"
    "\n"
    "  -o, --output OUT    dataset to write (written to OUT.tmp.<pid>, then renamed)\n"
    "  --classes LIST      keep only these labels, e.g. 0,2; they become 0..k-1 in the\n"
    "                      order given (default: keep all)\n"
    "  --label-column K    0-based column of the label; -1 = last (default -1)\n"
    "  --header            the first line is a header\n"
    "  --no-header         the first line is data\n"
    "                      (default: a header if the first line has a non-number)\n"
    "  --scale S           multiply feature values by S (default 1)\n"
    "  -h, --help          show this help\n";

static int usage_error(const char *sub, const char *fmt, const char *arg)
{
    fprintf(stderr, "ftune data: ");
    fprintf(stderr, fmt, arg);
    if (sub)
        fprintf(stderr, " (see 'ftune data %s --help')\n", sub);
    else
        fprintf(stderr, " (see 'ftune data --help')\n");
    return 2;
}

int ft_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* "5,6,7" -> keep[]; 0 on a malformed list. */
static int parse_classes(const char *s, int *keep, int *nkeep)
{
    *nkeep = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT_MAX || *nkeep == MAX_KEEP)
            return 0;
        keep[(*nkeep)++] = (int)v;
        while (*end == ' ')
            end++;
        if (*end == '\0')
            return 1;
        if (*end != ',')
            return 0;
        p = end + 1;
    }
}

int ft_opt_value(int argc, char **argv, int *i, const char *name, const char **value, int *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        *missing = 1;
        return 1;
    }
    *value = argv[++*i];
    return 1;
}

static int summary(const char *out, uint64_t written)
{
    ft_dataset d;
    ft_err err = {0};
    /* Reopening validates what was written and reports its real shape. */
    if (ft_dataset_open(&d, out, NULL, &err) != FT_OK) {
        fprintf(stderr, "ftune data: %s\n", err.msg);
        return err.code ? err.code : 1;
    }
    char shape[96];
    ft_shape_str(&d.sample, shape, sizeof shape);
    printf("wrote %llu sample%s to %s: inputs float32 [%llu, %s, labels int32, %d class%s\n",
           (unsigned long long)written, written == 1 ? "" : "s", out, (unsigned long long)d.n,
           shape + 1, d.classes, d.classes == 1 ? "" : "es");
    ft_dataset_close(&d);
    return 0;
}

static int run_import(int is_idx, int argc, char **argv)
{
    const char *sub = is_idx ? "import-idx" : "import-csv";
    const char *images = NULL, *labels = NULL, *csvfile = NULL, *out = NULL;
    const char *classes = NULL, *scale = NULL, *labcol = NULL;
    int header = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int missing = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(is_idx ? idx_usage : csv_usage, stdout);
            return 0;
        }
        if (ft_opt_value(argc, argv, &i, "-o", &v, &missing) ||
            ft_opt_value(argc, argv, &i, "--output", &v, &missing)) {
            out = v;
        } else if (ft_opt_value(argc, argv, &i, "--classes", &v, &missing)) {
            classes = v;
        } else if (ft_opt_value(argc, argv, &i, "--scale", &v, &missing)) {
            scale = v;
        } else if (is_idx && ft_opt_value(argc, argv, &i, "--images", &v, &missing)) {
            images = v;
        } else if (is_idx && ft_opt_value(argc, argv, &i, "--labels", &v, &missing)) {
            labels = v;
        } else if (!is_idx && ft_opt_value(argc, argv, &i, "--label-column", &v, &missing)) {
            labcol = v;
        } else if (!is_idx && !strcmp(a, "--header")) {
            header = 1;
        } else if (!is_idx && !strcmp(a, "--no-header")) {
            header = 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error(sub, "unknown option '%s'", a);
        } else if (!is_idx && !csvfile) {
            csvfile = a;
        } else {
            return usage_error(sub, "unexpected argument '%s'", a);
        }
        if (missing)
            return usage_error(sub, "option '%s' needs a value", a);
    }
    if (is_idx && !images)
        return usage_error(sub, "%s: --images FILE is required", sub);
    if (is_idx && !labels)
        return usage_error(sub, "%s: --labels FILE is required", sub);
    if (!is_idx && !csvfile)
        return usage_error(sub, "%s: the CSV FILE argument is required", sub);
    if (!out)
        return usage_error(sub, "%s: -o OUT is required", sub);

    static int keep[MAX_KEEP];
    ft_import_opts o = {
        .keep = keep, .nkeep = 0, .scale = 0.0f, .label_column = -1, .header = header};
    if (classes && !parse_classes(classes, keep, &o.nkeep))
        return usage_error(sub,
                           "--classes '%s': expected a comma-separated list of class "
                           "indices >= 0, e.g. 5,6,7",
                           classes);
    if (scale) {
        char *end;
        errno = 0;
        double s = strtod(scale, &end);
        if (!*scale || *end || errno || !(s > 0.0) || s > 1e30)
            return usage_error(sub, "--scale '%s': expected a positive number", scale);
        o.scale = (float)s;
    }
    if (labcol) {
        long k;
        if (!ft_parse_long(labcol, -1, INT_MAX, &k))
            return usage_error(sub, "--label-column '%s': expected -1 (last) or a column >= 0",
                               labcol);
        o.label_column = (int)k;
    }

    ft_err err = {0};
    uint64_t written = 0;
    int rc = is_idx ? ft_import_idx(images, labels, out, &o, &written, &err)
                    : ft_import_csv(csvfile, out, &o, &written, &err);
    if (rc != FT_OK) {
        fprintf(stderr, "ftune data: %s\n", err.msg);
        return rc == FT_EINPUT ? 2 : 1;
    }
    return summary(out, written);
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2) {
        fputs(data_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(data_usage, stdout);
        return 0;
    }
    if (!strcmp(sub, "import-idx"))
        return run_import(1, argc - 1, argv + 1);
    if (!strcmp(sub, "import-csv"))
        return run_import(0, argc - 1, argv + 1);
    if (!strcmp(sub, "import-text"))
        return cmd_data_import_text(argc - 1, argv + 1);
    if (!strcmp(sub, "tokenize"))
        return cmd_data_tokenize(argc - 1, argv + 1);
    return usage_error(NULL, "unknown subcommand '%s'", sub);
}
