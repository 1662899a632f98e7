/* Layer key/value lists: typed getters, validation messages, suggestions. */
#include <stdio.h>
#include <string.h>

#include "ftune/kv.h"

#include "testutil.h"

static const ft_keydef defs[] = {
    {"units", FT_KV_INT, 1, "outputs"},
    {"rate", FT_KV_FLOAT, 0, "dropout rate"},
    {"bias", FT_KV_BOOL, 0, "with bias"},
    {NULL, 0, 0, NULL},
};

int main(void)
{
    CHECK(ft_edit_distance("dir", "dir") == 0);
    CHECK(ft_edit_distance("dri", "dir") == 1); /* adjacent swap counts once */
    CHECK(ft_edit_distance("lrr", "lr") == 1);
    CHECK(ft_edit_distance("kitten", "sitting") == 3);
    const char *names[] = {"dir", "seed", "threads"};
    CHECK(ft_closest("dri", names, 3) == names[0]);
    CHECK(ft_closest("sed", names, 3) == names[1]);
    CHECK(ft_closest("zzzz", names, 3) == NULL);

    ft_kvlist kv;
    memset(&kv, 0, sizeof kv);
    snprintf(kv.where, sizeof kv.where, "m.cfg");
    ft_kv_set_int(&kv, "units", 8);
    ft_kv_set_int(&kv, "rate", 1); /* an integer is accepted as a number */
    ft_err err = {0};
    CHECK(ft_kv_validate(&kv, defs, "layer 'fc'", &err) == FT_OK);
    CHECK(ft_kv_int(&kv, "units", 0) == 8);
    CHECK(ft_kv_float(&kv, "rate", 0) == 1.0);
    CHECK(ft_kv_bool(&kv, "bias", 1) == 1);

    ft_kv_set_string(&kv, "unitz", "x");
    kv.items[kv.n - 1].line = 7;
    CHECK(ft_kv_validate(&kv, defs, "layer 'fc'", &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg,
                       "m.cfg:7: unknown key 'unitz' in layer 'fc' (did you mean 'units'?)");
    kv.n--;
    ft_kv_set_string(&kv, "bias", "yes");
    CHECK(ft_kv_validate(&kv, defs, "layer 'fc'", &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg,
                       "key 'bias' in layer 'fc' must be a boolean (true/false), not a string");

    ft_kvlist empty;
    memset(&empty, 0, sizeof empty);
    CHECK(ft_kv_validate(&empty, defs, "layer 'fc'", &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "missing required key 'units'");
    return tu_done("test_kv");
}
