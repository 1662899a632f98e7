/* JSON parser: values and accessors, escapes and UTF-8, strictness, limits
 * and error offsets, and the escaper. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/json.h"

#include "testutil.h"

static ft_json *parse(const char *s)
{
    ft_err err = {0};
    ft_json *v = NULL;
    if (ft_json_parse(s, strlen(s), &v, &err) != FT_OK)
        printf("unexpected parse error for %s: %s\n", s, err.msg);
    return v;
}

/* Parse must fail with FT_EINPUT and a message containing want. */
static void bad(const char *s, const char *want)
{
    ft_err err = {0};
    ft_json *v = (ft_json *)1;
    int rc = ft_json_parse(s, strlen(s), &v, &err);
    CHECK(rc == FT_EINPUT);
    CHECK(v == NULL);
    CHECK_STR_CONTAINS(err.msg, want);
}

static void test_values(void)
{
    ft_json *v = parse(" {\"a\": 1, \"b\": [true, false, null, -2.5e3, \"x\"], \"c\": {},"
                       " \"big\": 9007199254740993, \"neg\": -9223372036854775808,"
                       " \"huge\": 18446744073709551616, \"f\": 1.0, \"e\": 1e2} ");
    CHECK(v && v->type == FT_JSON_OBJECT);
    CHECK(ft_json_len(v) == 8);
    CHECK(strcmp(ft_json_key_at(v, 0), "a") == 0);
    CHECK(strcmp(ft_json_key_at(v, 7), "e") == 0);
    int64_t i = 0;
    double d = 0;
    int b = -1;
    CHECK(ft_json_int64(ft_json_get(v, "a"), &i) && i == 1);
    const ft_json *arr = ft_json_get(v, "b");
    CHECK(ft_json_is(arr, FT_JSON_ARRAY) && ft_json_len(arr) == 5);
    CHECK(ft_json_bool(ft_json_at(arr, 0), &b) && b == 1);
    CHECK(ft_json_bool(ft_json_at(arr, 1), &b) && b == 0);
    CHECK(ft_json_is(ft_json_at(arr, 2), FT_JSON_NULL));
    CHECK(ft_json_double(ft_json_at(arr, 3), &d) && d == -2500.0);
    CHECK(!ft_json_int64(ft_json_at(arr, 3), &i)); /* not an integer literal */
    CHECK(strcmp(ft_json_string(ft_json_at(arr, 4)), "x") == 0);
    CHECK(ft_json_at(arr, 5) == NULL);
    CHECK(ft_json_is(ft_json_get(v, "c"), FT_JSON_OBJECT) && ft_json_len(ft_json_get(v, "c")) == 0);
    /* integers are exact beyond 2^53 */
    CHECK(ft_json_int64(ft_json_get(v, "big"), &i) && i == 9007199254740993LL);
    CHECK(ft_json_int64(ft_json_get(v, "neg"), &i) && i == INT64_MIN);
    /* beyond int64: a number, not an integer */
    CHECK(!ft_json_int64(ft_json_get(v, "huge"), &i));
    CHECK(ft_json_double(ft_json_get(v, "huge"), &d) && d > 1.8e19);
    CHECK(!ft_json_int64(ft_json_get(v, "f"), &i));
    CHECK(!ft_json_int64(ft_json_get(v, "e"), &i));
    /* typed getters with defaults */
    CHECK(ft_json_get_int64(v, "a", 7) == 1);
    CHECK(ft_json_get_int64(v, "missing", 7) == 7);
    CHECK(ft_json_get_int64(v, "b", 7) == 7); /* wrong type */
    CHECK(strcmp(ft_json_get_string(v, "a", "dflt"), "dflt") == 0);
    CHECK(ft_json_get_double(v, "e", 0) == 100.0);
    CHECK(ft_json_get_bool(v, "a", 1) == 1);
    /* NULL-safety */
    CHECK(ft_json_get(NULL, "a") == NULL);
    CHECK(ft_json_get(arr, "a") == NULL);
    CHECK(ft_json_len(NULL) == 0);
    CHECK(ft_json_string(NULL) == NULL);
    ft_json_free(v);

    /* scalars at the top level */
    v = parse("42");
    CHECK(v && ft_json_int64(v, &i) && i == 42);
    ft_json_free(v);
    v = parse("\"s\"");
    CHECK(v && strcmp(ft_json_string(v), "s") == 0);
    ft_json_free(v);
    ft_json_free(NULL);
}

static void test_lookup_many(void)
{
    /* an object with many keys (binary search over the sorted index) */
    size_t cap = 1 << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{");
    for (int k = 0; k < 5000; k++)
        n += (size_t)snprintf(s + n, cap - n, "%s\"layer%d.weight\": %d", k ? "," : "",
                              (k * 7919) % 5000, k);
    n += (size_t)snprintf(s + n, cap - n, "}");
    ft_json *v = parse(s);
    CHECK(v && ft_json_len(v) == 5000);
    int ok = 1;
    for (int k = 0; k < 5000 && v; k++) {
        char key[32];
        snprintf(key, sizeof key, "layer%d.weight", (k * 7919) % 5000);
        int64_t i;
        ok &= ft_json_int64(ft_json_get(v, key), &i) && i == k;
    }
    CHECK(ok);
    CHECK(ft_json_get(v, "layer5000.weight") == NULL);
    ft_json_free(v);
    free(s);
}

static void test_strings(void)
{
    ft_json *v = parse("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\", "
                       "\"\\ud83d\\ude00\", \"caf\xc3\xa9\", \"nul\\u0000x\"]");
    CHECK(v != NULL);
    if (!v)
        return;
    CHECK(strcmp(ft_json_string(ft_json_at(v, 0)), "a\"b\\c/d\b\f\n\r\t") == 0);
    CHECK(strcmp(ft_json_string(ft_json_at(v, 1)), "\xc3\xa9\xe2\x82\xac") == 0);
    CHECK(strcmp(ft_json_string(ft_json_at(v, 2)), "\xf0\x9f\x98\x80") == 0); /* U+1F600 */
    CHECK(strcmp(ft_json_string(ft_json_at(v, 3)), "caf\xc3\xa9") == 0);
    const ft_json *nul = ft_json_at(v, 4);
    CHECK(nul->len == 5 && memcmp(nul->s, "nul\0x", 5) == 0);
    ft_json_free(v);
}

static void test_strict(void)
{
    bad("", "unexpected end of input");
    bad("   ", "at byte 3");
    bad("{", "unterminated object");
    bad("[1, 2", "unterminated array");
    bad("[1 2]", "expected ',' or ']'");
    bad("[1,]", "expected a value");
    bad("{\"a\":1,}", "expected a string key");
    bad("{\"a\" 1}", "expected ':' after an object key at byte 5");
    bad("{a:1}", "expected a string key");
    bad("{\"a\":1, \"a\":2}", "duplicate key \"a\"");
    bad("01", "leading zero");
    bad("1.", "expected a digit after the decimal point");
    bad("1e", "expected a digit in the exponent");
    bad("-", "invalid number");
    bad("+1", "unexpected character");
    bad("NaN", "unexpected character");
    bad("1e999", "number out of range");
    bad("tru", "unexpected character");
    bad("nulls", "unexpected text after the value");
    bad("1 2", "unexpected text after the value at byte 2");
    bad("// c\n1", "unexpected character");
    bad("\"abc", "unterminated string");
    bad("\"a\nb\"", "control character");
    bad("\"\\x\"", "invalid escape");
    bad("\"\\u12\"", "\\u escape at byte 1");
    bad("\"\\u12g4\"", "bad hex digit in a \\u escape at byte 5");
    bad("\"\\u12", "unterminated string");
    bad("\"\\ud83d\"", "high surrogate not followed by a low surrogate");
    bad("\"\\ud83d\\u0041\"", "high surrogate not followed by a low surrogate");
    bad("\"\\ude00\"", "lone low surrogate");
    bad("\"\xff\"", "invalid UTF-8");
    bad("\"\xc0\xaf\"", "invalid UTF-8");         /* overlong '/' */
    bad("\"\xed\xa0\x80\"", "invalid UTF-8");     /* encoded surrogate */
    bad("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */
    bad("\"\xe2\x82\"", "invalid UTF-8");         /* truncated sequence */
    bad("{\"a\\u0000b\": 1}", "NUL character");
}

static void test_limits(void)
{
    /* depth */
    char deep[300];
    memset(deep, '[', 200);
    deep[200] = '\0';
    bad(deep, "nesting deeper than 64 levels");
    char ok[200];
    memset(ok, '[', 64);
    memset(ok + 64, ']', 64);
    ok[128] = '\0';
    ft_json *v = parse(ok);
    CHECK(v != NULL);
    ft_json_free(v);

    ft_err err = {0};
    ft_json_limits lim = {.max_depth = 3};
    CHECK(ft_json_parse_ex("[[[1]]]", 7, &lim, &v, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "deeper than 3");
    lim = (ft_json_limits){.max_len = 4};
    CHECK(ft_json_parse_ex("[1,2]", 5, &lim, &v, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "more than the limit of 4");
    lim = (ft_json_limits){.max_values = 3};
    CHECK(ft_json_parse_ex("[1,2,3]", 7, &lim, &v, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "more than 3 values");
    CHECK(ft_json_parse_ex("[1,2]", 5, &lim, &v, &err) == FT_OK);
    ft_json_free(v);

    /* the length is honoured: no reading past len, no NUL needed */
    char buf[4] = {'[', '1', ']', 'x'};
    CHECK(ft_json_parse(buf, 3, &v, &err) == FT_OK);
    ft_json_free(v);
    CHECK(ft_json_parse("[1, 2]", 4, &v, &err) == FT_EINPUT);
}

static void test_escape(void)
{
    char buf[64];
    size_t n = ft_json_escape(buf, sizeof buf, "a\"b\\c\n\x01\xc3\xa9");
    CHECK(strcmp(buf, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"") == 0);
    CHECK(n == strlen(buf));
    /* truncation like snprintf */
    char small[5];
    n = ft_json_escape(small, sizeof small, "abcdef");
    CHECK(n == 8 && strcmp(small, "\"abc") == 0);
    /* round trip through the parser */
    const char *orig = "tab\there \"quoted\" back\\slash \x7f \xe2\x82\xac";
    char q[128];
    ft_json_escape(q, sizeof q, orig);
    ft_json *v = parse(q);
    CHECK(v && strcmp(ft_json_string(v), orig) == 0);
    ft_json_free(v);
    /* FILE writer */
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    CHECK(ft_json_write_string(f, "x\"y") == 0);
    fclose(f);
    CHECK(strcmp(mem, "\"x\\\"y\"") == 0);
    free(mem);
}

int main(void)
{
    test_values();
    test_lookup_many();
    test_strings();
    test_strict();
    test_limits();
    test_escape();
    return tu_done("test_json");
}
