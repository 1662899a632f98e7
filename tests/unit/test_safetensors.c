/* safetensors: writer/reader round trip, dtype conversions (F16, BF16, F64
 * and integers) on exact sample values, and hostile files, each refused with
 * FT_EINPUT naming the file and tensor, without large allocations (the
 * hostile files are opened in a child with a small address-space limit). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ftune/safetensors.h"

#include "testutil.h"

static char path_buf[600];

static const char *tpath(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", tu_tmpdir(), name);
    return path_buf;
}

/* A file from a header text, a header length (UINT64_MAX: the real one) and
 * raw data bytes. */
static const char *raw_file(const char *name, const char *header, uint64_t hlen, const void *data,
                            size_t ndata)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return p;
    uint64_t n = hlen == UINT64_MAX ? strlen(header) : hlen;
    unsigned char len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)(n >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (ndata)
        fwrite(data, 1, ndata, f);
    fclose(f);
    return p;
}

static void test_round_trip(void)
{
    float w[2 * 3] = {1.5f, -2.25f, 3e-38f, 1e30f, -0.0f, 0.1f};
    float b[2] = {INFINITY, 42.0f};
    int64_t nbt = 12345678901LL;
    float s = 7.0f;
    ft_st_entry e[4] = {
        {"fc1.weight", FT_ST_F32, 2, {2, 3}, w},
        {"fc1.bias", FT_ST_F32, 1, {2}, b},
        {"bn.num_batches_tracked", FT_ST_I64, 0, {0}, &nbt},
        {"scalar \"quoted\"", FT_ST_F32, 0, {0}, &s},
    };
    const char *meta[] = {"format", "pt", "note", "ü\n\"x\""};
    char p[600];
    snprintf(p, sizeof p, "%s", tpath("rt.safetensors"));
    ft_err err = {0};
    CHECK(ft_st_write(p, e, 4, meta, 2, &err) == FT_OK);

    ft_st_file f;
    CHECK(ft_st_open(&f, p, &err) == FT_OK);
    if (err.code) {
        printf("%s\n", err.msg);
        return;
    }
    CHECK(f.ntensors == 4);
    CHECK(f.data_start % 8 == 0);                        /* header padded for alignment */
    CHECK(strcmp(f.tensors[0].name, "fc1.weight") == 0); /* header order kept */
    CHECK(f.nmeta == 2);
    CHECK(ft_st_meta(&f, "format") && strcmp(ft_st_meta(&f, "format"), "pt") == 0);
    CHECK(ft_st_meta(&f, "note") && strcmp(ft_st_meta(&f, "note"), "ü\n\"x\"") == 0);
    CHECK(ft_st_meta(&f, "absent") == NULL);

    const ft_st_tensor *t = ft_st_find(&f, "fc1.weight");
    CHECK(t && t->dtype == FT_ST_F32 && t->rank == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
          t->count == 6);
    float out[6];
    CHECK(t && ft_st_read_f32(&f, t, out, 6, &err) == FT_OK && memcmp(out, w, sizeof w) == 0);
    CHECK(t && signbit(out[4]));
    t = ft_st_find(&f, "fc1.bias");
    CHECK(t && ft_st_read_f32(&f, t, out, 2, &err) == FT_OK && isinf(out[0]) && out[1] == 42.0f);
    /* wrong count asked for */
    CHECK(t && ft_st_read_f32(&f, t, out, 3, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "fc1.bias");
    t = ft_st_find(&f, "bn.num_batches_tracked");
    CHECK(t && t->dtype == FT_ST_I64 && t->rank == 0 && t->count == 1);
    CHECK(t && ft_st_read_f32(&f, t, out, 1, &err) == FT_OK && out[0] == (float)nbt);
    t = ft_st_find(&f, "scalar \"quoted\"");
    CHECK(t && ft_st_read_f32(&f, t, out, 1, &err) == FT_OK && out[0] == 7.0f);
    CHECK(ft_st_find(&f, "fc1") == NULL);
    char sh[64];
    CHECK(strcmp(ft_st_shape_str(ft_st_find(&f, "fc1.weight"), sh, sizeof sh), "[2, 3]") == 0);
    ft_st_close(&f);
    ft_st_close(&f); /* harmless twice */

    /* no metadata, no tensors */
    CHECK(ft_st_write(p, NULL, 0, NULL, 0, &err) == FT_OK);
    CHECK(ft_st_open(&f, p, &err) == FT_OK && f.ntensors == 0 && f.nmeta == 0);
    ft_st_close(&f);

    /* writer refusals */
    ft_st_entry dup[2] = {e[0], e[0]};
    CHECK(ft_st_write(p, dup, 2, NULL, 0, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "two tensors are named 'fc1.weight'");
    ft_st_entry f16 = {"x", FT_ST_F16, 1, {2}, w};
    CHECK(ft_st_write(p, &f16, 1, NULL, 0, &err) == FT_EINPUT);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", tu_tmpdir());
    CHECK(ft_st_write(bad, e, 1, NULL, 0, &err) == FT_ERUNTIME);
    CHECK_STR_CONTAINS(err.msg, bad);
}

static void le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void test_dtypes(void)
{
    /* F16 samples and their exact float values */
    static const uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400,
                                 0x3555, 0x8000, 0x7C00, 0xFC00, 0x7E00};
    const float hv[] = {1.0f,     -2.0f,       65504.0f, 0x1p-24f, 1023 * 0x1p-24f,
                        0x1p-14f, 0x1.554p-2f, -0.0f,    INFINITY, -INFINITY,
                        NAN};
    /* BF16 samples */
    static const uint16_t bf[] = {0x3F80, 0x4049, 0xFF80, 0x0001, 0xC2F7, 0x7FC0};
    const float bv[] = {1.0f, 3.140625f, -INFINITY, 0x1p-133f, -123.5f, NAN};
    /* F64 samples: exact, rounded to nearest, out of float range */
    const double dv[] = {0.5, 1.0 / 3.0, 1e300, -1e-300, 16777217.0};
    unsigned char data[256] = {0}; /* the gap [34, 40) is written too */
    size_t o = 0;
    for (size_t i = 0; i < sizeof h / sizeof *h; i++, o += 2)
        le16(data + o, h[i]); /* [0, 22) */
    for (size_t i = 0; i < sizeof bf / sizeof *bf; i++, o += 2)
        le16(data + o, bf[i]); /* [22, 34) */
    o = 40;                    /* F64 at [40, 80) */
    for (size_t i = 0; i < 5; i++, o += 8) {
        uint64_t u;
        memcpy(&u, &dv[i], 8);
        for (int b = 0; b < 8; b++)
            data[o + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    /* I32 -7, 2147483647 at [80, 88); U8 200, I8 -100, BOOL 1, 0 at [88, 92);
     * I16 -300 at [92, 94); U16 65535 at [94, 96); I64 -5 at [96, 104) */
    const int32_t i32[2] = {-7, 2147483647};
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 4; b++)
            data[80 + 4 * k + b] = (unsigned char)((uint32_t)i32[k] >> (8 * b));
    data[88] = 200;
    data[89] = (unsigned char)(int8_t)-100;
    data[90] = 1;
    data[91] = 0;
    le16(data + 92, (uint16_t)(int16_t)-300);
    le16(data + 94, 65535);
    for (int b = 0; b < 8; b++)
        data[96 + b] = (unsigned char)((uint64_t)(int64_t)-5 >> (8 * b));
    data[104] = 0x38; /* an F8_E4M3 value: valid, not readable */
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]},"
                      "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[22,34]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[5],\"data_offsets\":[40,80]},"
                      "\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[80,88]},"
                      "\"u8\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[88,89]},"
                      "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[89,90]},"
                      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[90,92]},"
                      "\"i16\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[92,94]},"
                      "\"u16\":{\"dtype\":\"U16\",\"shape\":[1,1],\"data_offsets\":[94,96]},"
                      "\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[96,104]},"
                      "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[104,105]},"
                      "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[105,105]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}";
    const char *p = raw_file("dtypes.safetensors", hdr, UINT64_MAX, data, 105);
    ft_st_file f;
    ft_err err = {0};
    CHECK(ft_st_open(&f, p, &err) == FT_OK);
    if (err.code) {
        printf("%s\n", err.msg);
        return;
    }
    CHECK(f.ntensors == 12);
    float out[16];
    const ft_st_tensor *t = ft_st_find(&f, "h");
    CHECK(t && ft_st_read_f32(&f, t, out, 11, &err) == FT_OK);
    for (int i = 0; i < 11; i++) {
        if (isnan(hv[i]))
            CHECK(isnan(out[i]));
        else
            CHECK(out[i] == hv[i] && signbit(out[i]) == signbit(hv[i]));
    }
    t = ft_st_find(&f, "bf");
    CHECK(t && t->count == 6 && ft_st_read_f32(&f, t, out, 6, &err) == FT_OK);
    for (int i = 0; i < 6; i++) {
        if (isnan(bv[i]))
            CHECK(isnan(out[i]));
        else
            CHECK(out[i] == bv[i]);
    }
    t = ft_st_find(&f, "d");
    CHECK(t && ft_st_read_f32(&f, t, out, 5, &err) == FT_OK);
    CHECK(out[0] == 0.5f && out[1] == (float)(1.0 / 3.0) && isinf(out[2]) && out[3] == -0.0f &&
          out[4] == 16777216.0f);
    t = ft_st_find(&f, "i32");
    CHECK(t && ft_st_read_f32(&f, t, out, 2, &err) == FT_OK && out[0] == -7.0f &&
          out[1] == 2147483648.0f);
    CHECK(ft_st_read_f32(&f, ft_st_find(&f, "u8"), out, 1, &err) == FT_OK && out[0] == 200.0f);
    CHECK(ft_st_read_f32(&f, ft_st_find(&f, "i8"), out, 1, &err) == FT_OK && out[0] == -100.0f);
    CHECK(ft_st_read_f32(&f, ft_st_find(&f, "b"), out, 2, &err) == FT_OK && out[0] == 1.0f &&
          out[1] == 0.0f);
    t = ft_st_find(&f, "i16");
    CHECK(t && t->rank == 0 && ft_st_read_f32(&f, t, out, 1, &err) == FT_OK && out[0] == -300.0f);
    CHECK(ft_st_read_f32(&f, ft_st_find(&f, "u16"), out, 1, &err) == FT_OK && out[0] == 65535.0f);
    CHECK(ft_st_read_f32(&f, ft_st_find(&f, "i64"), out, 1, &err) == FT_OK && out[0] == -5.0f);
    t = ft_st_find(&f, "empty");
    CHECK(t && t->count == 0 && ft_st_read_f32(&f, t, out, 0, &err) == FT_OK);
    t = ft_st_find(&f, "f8");
    CHECK(t && ft_st_read_f32(&f, t, out, 1, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tensor 'f8' has dtype F8_E4M3, which ftune cannot read");
    CHECK(ft_st_dtype_from_name("BF16") == FT_ST_BF16 && ft_st_dtype_from_name("bf16") == 0);
    CHECK(ft_st_dtype_size(FT_ST_F4) == 0 && ft_st_dtype_size(FT_ST_F64) == 8);
    ft_st_close(&f);

    /* a large tensor read in several chunks */
    size_t n = (1u << 20) + 123;
    float *big = malloc(n * sizeof *big), *back = malloc(n * sizeof *back);
    for (size_t i = 0; i < n; i++)
        big[i] = (float)i * 0.5f - 7.0f;
    ft_st_entry e = {"big", FT_ST_F32, 2, {1, (int64_t)n}, big};
    char bp[600];
    snprintf(bp, sizeof bp, "%s", tpath("big.safetensors"));
    CHECK(ft_st_write(bp, &e, 1, NULL, 0, &err) == FT_OK);
    CHECK(ft_st_open(&f, bp, &err) == FT_OK);
    t = ft_st_find(&f, "big");
    CHECK(t && ft_st_read_f32(&f, t, back, n, &err) == FT_OK &&
          memcmp(big, back, n * sizeof *big) == 0);
    ft_st_close(&f);
    free(big);
    free(back);
}

/* Opening must fail with FT_EINPUT and a message containing the path and
 * every given fragment. */
static int refused(const char *p, const char *a, const char *b)
{
    ft_st_file f;
    ft_err err = {0};
    int rc = ft_st_open(&f, p, &err);
    int ok = rc == FT_EINPUT && strstr(err.msg, p) && (!a || strstr(err.msg, a)) &&
             (!b || strstr(err.msg, b));
    if (!ok || getenv("FTUNE_TEST_VERBOSE"))
        fprintf(stderr, "%s: rc=%d msg=%s (want '%s' '%s')\n", ok ? "ok" : "FAIL", rc, err.msg,
                a ? a : "", b ? b : "");
    if (rc == FT_OK)
        ft_st_close(&f);
    return ok;
}

#define T(name, hdr) "{\"" name "\":{" hdr "}}"

static int hostile(void)
{
    unsigned char zeros[64] = {0};
    int ok = 1;
    const char *p;

    p = tpath("short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\x05\0\0", 1, 3, f);
    fclose(f);
    ok &= refused(p, "too short for a safetensors header", NULL);
    ok &= refused(tpath("missing.safetensors"), "cannot open", NULL);
    ok &= refused(tu_tmpdir(), "is not a regular file", NULL);

    p = raw_file("huge-len.safetensors", "{}", UINT64_MAX / 2, NULL, 0);
    ok &= refused(p, "more than the 100000000-byte limit", NULL);
    p = raw_file("past-end.safetensors", "{}", 99999999, NULL, 0);
    ok &= refused(p, "runs past the end of the file", "truncated");
    p = raw_file("tiny-len.safetensors", "{}", 1, NULL, 0);
    ok &= refused(p, "too small", NULL);
    p = raw_file("not-obj.safetensors", "[1, 2]", UINT64_MAX, NULL, 0);
    ok &= refused(p, "does not start with '{'", NULL);
    p = raw_file("bad-json.safetensors", "{\"a\": {\"dtype\": \"F32\",}}", UINT64_MAX, NULL, 0);
    ok &= refused(p, "safetensors header: JSON:", "at byte 22");
    p = raw_file("dup.safetensors",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}",
                 UINT64_MAX, zeros, 8);
    ok &= refused(p, "duplicate key \"a\"", NULL);

    p = raw_file("outside.safetensors",
                 T("fc1.weight", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]"),
                 UINT64_MAX, zeros, 12);
    ok &= refused(p, "tensor 'fc1.weight'", "run past the end of the data area (12 bytes");
    p = raw_file("far.safetensors",
                 T("w", "\"dtype\":\"F32\",\"shape\":[1],"
                        "\"data_offsets\":[18446744073709551612,18446744073709551615]"),
                 UINT64_MAX, zeros, 8);
    ok &= refused(p, "tensor 'w'", NULL);
    p = raw_file("backwards.safetensors",
                 T("w", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]"), UINT64_MAX,
                 zeros, 8);
    ok &= refused(p, "tensor 'w'", "end before they begin");
    p = raw_file("overlap.safetensors",
                 "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                 UINT64_MAX, zeros, 24);
    ok &= refused(p, "'conv1.weight' [0, 16) and 'conv1.bias' [12, 20) overlap", NULL);
    p = raw_file("size.safetensors",
                 T("fc2.bias", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"),
                 UINT64_MAX, zeros, 8);
    ok &= refused(p, "tensor 'fc2.bias'", "hold 8 bytes, but dtype F32 with shape [3] needs 12");
    p = raw_file("size16.safetensors",
                 T("h", "\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]"), UINT64_MAX,
                 zeros, 16);
    ok &= refused(p, "tensor 'h'", "needs 8 bytes");
    p = raw_file("giant.safetensors",
                 T("g", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                        "\"data_offsets\":[0,4]"),
                 UINT64_MAX, zeros, 4);
    ok &= refused(p, "tensor 'g'", "too large");
    p = raw_file("giant2.safetensors",
                 T("g", "\"dtype\":\"F64\",\"shape\":[2305843009213693952,4],"
                        "\"data_offsets\":[0,4]"),
                 UINT64_MAX, zeros, 4);
    ok &= refused(p, "tensor 'g'", "too large");
    p = raw_file("many-dims.safetensors",
                 T("m", "\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"),
                 UINT64_MAX, zeros, 4);
    ok &= refused(p, "tensor 'm'", "9 dimensions");
    p = raw_file("neg-shape.safetensors",
                 T("n", "\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]"), UINT64_MAX,
                 zeros, 4);
    ok &= refused(p, "tensor 'n'", "non-negative integers");
    p = raw_file("float-shape.safetensors",
                 T("n", "\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), UINT64_MAX,
                 zeros, 4);
    ok &= refused(p, "tensor 'n'", "shape");
    p = raw_file("dtype.safetensors",
                 T("fc1.weight", "\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]"),
                 UINT64_MAX, zeros, 4);
    ok &= refused(p, "tensor 'fc1.weight'", "unknown dtype \"Q4\"");
    p = raw_file("no-dtype.safetensors", T("x", "\"shape\":[1],\"data_offsets\":[0,4]"), UINT64_MAX,
                 zeros, 4);
    ok &= refused(p, "tensor 'x'", "dtype");
    p = raw_file("offsets3.safetensors",
                 T("x", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), UINT64_MAX,
                 zeros, 8);
    ok &= refused(p, "tensor 'x'", "data_offsets");
    p = raw_file("entry.safetensors", "{\"x\": 3}", UINT64_MAX, NULL, 0);
    ok &= refused(p, "tensor 'x'", "is a JSON number");
    p = raw_file("meta.safetensors", "{\"__metadata__\":{\"format\":1}}", UINT64_MAX, NULL, 0);
    ok &= refused(p, "__metadata__", "must map strings to strings");
    p = raw_file("meta2.safetensors", "{\"__metadata__\":[]}", UINT64_MAX, NULL, 0);
    ok &= refused(p, "__metadata__", "expected an object");

    /* truncated copies of a valid file: every prefix is refused cleanly */
    float w[6] = {1, 2, 3, 4, 5, 6};
    ft_st_entry e[2] = {{"a", FT_ST_F32, 2, {2, 2}, w}, {"b", FT_ST_F32, 1, {2}, w + 4}};
    char full[600];
    snprintf(full, sizeof full, "%s", tpath("full.safetensors"));
    ft_err err = {0};
    ft_st_write(full, e, 2, NULL, 0, &err);
    FILE *in = fopen(full, "rb");
    unsigned char buf[512];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (in)
        fclose(in);
    for (size_t cut = 0; cut < n; cut++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.safetensors", cut);
        p = tpath(name);
        FILE *o = fopen(p, "wb");
        fwrite(buf, 1, cut, o);
        fclose(o);
        ok &= refused(p, NULL, NULL);
    }
    return ok;
}

static void test_hostile(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
#ifndef __SANITIZE_ADDRESS__
        /* nothing here may allocate more than a few MB */
        struct rlimit rl = {256u << 20, 256u << 20};
        setrlimit(RLIMIT_AS, &rl);
#endif
        _exit(hostile() ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    test_round_trip();
    test_dtypes();
    test_hostile();
    return tu_done("test_safetensors");
}
