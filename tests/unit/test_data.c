/* Datasets: writer/reader round trip, random-index reads, validation
 * messages, epoch order, rank split, IDX and CSV importers. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include "ftune/data.h"
#include "ftune/h5util.h"
#include "ftune/rng.h"

#include "testutil.h"

static char *tpath(const char *name)
{
    static char buf[64][256]; /* distinct buffers: callers keep several */
    static int k;
    char *p = buf[k++ % 64];
    snprintf(p, sizeof buf[0], "%s/%s", tu_tmpdir(), name);
    return p;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* No "<path>.tmp.*" left next to path. */
static int no_tmp_left(const char *path)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    return !exists(tmp);
}

static float xval(uint64_t i, size_t k)
{
    return (float)i * 1000.0f + (float)k;
}

static void test_round_trip(void)
{
    const char *path = tpath("rt.h5");
    ft_shape s = ft_shape3(1, 4, 5);
    const uint64_t n = 100;
    ft_err err = {0};
    ft_dataset_writer w;
    CHECK(ft_dataset_create(&w, path, n, &s, 7, &err) == FT_OK);
    CHECK(!exists(path)); /* only the temporary exists until finish */
    size_t sf = ft_shape_count(&s);
    float *x = malloc(n * sf * sizeof *x);
    int *y = malloc(n * sizeof *y);
    for (uint64_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sf; k++)
            x[i * sf + k] = xval(i, k);
        y[i] = (int)(i % 7);
    }
    CHECK(ft_dataset_append(&w, x, y, 30, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, x + 30 * sf, y + 30, 30, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, x + 60 * sf, y + 60, 40, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, x, y, 1, &err) == FT_ERUNTIME); /* beyond N */
    CHECK(ft_dataset_finish(&w, &err) == FT_OK);
    CHECK(exists(path));
    CHECK(no_tmp_left(path));

    ft_dataset d;
    CHECK(ft_dataset_open(&d, path, &s, &err) == FT_OK);
    CHECK(d.n == n);
    CHECK(ft_shape_equal(&d.sample, &s));
    CHECK(d.sample_floats == sf);
    CHECK(d.classes == 7);
    CHECK(d.nclass_names == 0);

    /* Random indices with duplicates, in any order. */
    enum { B = 64 };
    uint64_t idx[B];
    float bx[B * 20];
    int by[B];
    ft_rng r;
    ft_rng_seed(&r, 42);
    for (int trial = 0; trial < 20; trial++) {
        for (int k = 0; k < B; k++)
            idx[k] = ft_rng_below(&r, n);
        idx[3] = idx[7]; /* a guaranteed duplicate */
        memset(bx, 0, sizeof bx);
        CHECK(ft_dataset_read(&d, idx, B, bx, by, &err) == FT_OK);
        int bad = 0;
        for (int k = 0; k < B; k++) {
            bad += by[k] != (int)(idx[k] % 7);
            for (size_t j = 0; j < sf; j++)
                bad += bx[k * sf + j] != xval(idx[k], j);
        }
        CHECK(bad == 0);
    }
    /* Sorted (evaluation) reads and many separate runs (more than one read group). */
    uint64_t seq[B];
    for (int k = 0; k < B; k++)
        seq[k] = (uint64_t)k + (uint64_t)(k / 2); /* 0,1,3,4,6,7,...: 32 runs */
    CHECK(ft_dataset_read(&d, seq, B, bx, by, &err) == FT_OK);
    int bad = 0;
    for (int k = 0; k < B; k++)
        bad += by[k] != (int)(seq[k] % 7) || bx[k * sf + 19] != xval(seq[k], 19);
    CHECK(bad == 0);
    uint64_t odd[B];
    for (int k = 0; k < B; k++)
        odd[B - 1 - k] = (uint64_t)(2 * k + 1) % n; /* descending, 64 one-row runs */
    CHECK(ft_dataset_read(&d, odd, B, bx, by, &err) == FT_OK);
    bad = 0;
    for (int k = 0; k < B; k++)
        bad += by[k] != (int)(odd[k] % 7) || bx[k * sf] != xval(odd[k], 0);
    CHECK(bad == 0);

    CHECK(ft_dataset_read(&d, idx, 0, bx, by, &err) == FT_OK);
    uint64_t oob = n;
    CHECK(ft_dataset_read(&d, &oob, 1, bx, by, &err) != FT_OK);
    CHECK_STR_CONTAINS(err.msg, "out of range");
    ft_dataset_close(&d);

    /* The expected shape is checked, printing both. */
    ft_shape other = ft_shape3(3, 4, 5);
    CHECK(ft_dataset_open(&d, path, &other, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "rt.h5");
    CHECK_STR_CONTAINS(err.msg, "[1, 4, 5]");
    CHECK_STR_CONTAINS(err.msg, "[3, 4, 5]");

    /* finish with too few samples fails and leaves nothing behind. */
    const char *short_path = tpath("short.h5");
    CHECK(ft_dataset_create(&w, short_path, 10, &s, 7, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, x, y, 5, &err) == FT_OK);
    CHECK(ft_dataset_finish(&w, &err) == FT_ERUNTIME);
    CHECK_STR_CONTAINS(err.msg, "5 of 10");
    CHECK(!exists(short_path));
    CHECK(no_tmp_left(short_path));
    /* abort removes the temporary file. */
    CHECK(ft_dataset_create(&w, short_path, 10, &s, 7, &err) == FT_OK);
    ft_dataset_abort(&w);
    CHECK(!exists(short_path));
    CHECK(no_tmp_left(short_path));
    ft_dataset_abort(&w); /* twice is harmless */
    CHECK(ft_dataset_create(&w, "/nonexistent-dir/x.h5", 10, &s, 7, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent-dir/x.h5");
    free(x);
    free(y);
}

/* Files that are not plain (chunked + compressed, big-endian) are read
 * through HDF5's hyperslab path; results must be identical. */
static void test_chunked_big_endian(void)
{
    const char *p = tpath("chunked.h5");
    enum { N = 300, C = 2, H = 3, W = 2 };
    static float x[N * C * H * W];
    static int y[N];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < C * H * W; k++)
            x[i * C * H * W + k] = xval((uint64_t)i, (size_t)k);
        y[i] = i % 5;
    }
    ft_h5_quiet();
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {N, C, H, W}, chunk[4] = {7, C, H, W}, lchunk = 16;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t ds = H5Dcreate2(f, "inputs", H5T_IEEE_F32BE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &lchunk);
    sp = H5Screate_simple(1, dims, NULL);
    ds = H5Dcreate2(f, "labels", H5T_STD_I32BE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Fclose(f);

    ft_err err = {0};
    ft_dataset d;
    ft_shape want = ft_shape3(C, H, W);
    if (!CHECK(ft_dataset_open(&d, p, &want, &err) == FT_OK)) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK(d.classes == 5);
    enum { B = 200 }; /* > RUNS_PER_READ runs: several reads */
    uint64_t idx[B];
    static float bx[B * C * H * W];
    int by[B];
    ft_rng r;
    ft_rng_seed(&r, 7);
    int bad = 0;
    for (int trial = 0; trial < 5; trial++) {
        for (int k = 0; k < B; k++)
            idx[k] = trial == 4 ? (uint64_t)k : ft_rng_below(&r, N);
        CHECK(ft_dataset_read(&d, idx, B, bx, by, &err) == FT_OK);
        for (int k = 0; k < B; k++) {
            bad += by[k] != (int)(idx[k] % 5);
            for (int j = 0; j < C * H * W; j++)
                bad += bx[k * C * H * W + j] != xval(idx[k], (size_t)j);
        }
    }
    CHECK(bad == 0);
    ft_dataset_close(&d);
}

/* Writes a file with the raw HDF5 API. in_rank == 0 omits inputs,
 * lab_n < 0 omits labels, classes < 0 omits the attribute. */
static void make_file(const char *path, hid_t in_type, int in_rank, const hsize_t *in_dims,
                      hid_t lab_type, long long lab_n, const long long *labels, long long classes)
{
    ft_h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (in_rank > 0) {
        hid_t sp = H5Screate_simple(in_rank, in_dims, NULL);
        hid_t ds = H5Dcreate2(f, "inputs", in_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t total = 1;
        for (int i = 0; i < in_rank; i++)
            total *= in_dims[i];
        double *zeros = calloc(total ? total : 1, sizeof *zeros);
        H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
        free(zeros);
        H5Dclose(ds);
        H5Sclose(sp);
    }
    if (lab_n >= 0) {
        hsize_t ln = (hsize_t)lab_n;
        hid_t sp = H5Screate_simple(1, &ln, NULL);
        hid_t ds = H5Dcreate2(f, "labels", lab_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (lab_n > 0)
            H5Dwrite(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
        H5Dclose(ds);
        H5Sclose(sp);
    }
    if (classes >= 0) {
        ft_err err = {0};
        ft_h5_set_int_attr(f, "classes", classes, &err);
    }
    H5Fclose(f);
}

static int open_msg(const char *path, const ft_shape *expect, ft_err *err)
{
    ft_dataset d;
    int rc = ft_dataset_open(&d, path, expect, err);
    if (rc == FT_OK)
        ft_dataset_close(&d);
    return rc;
}

static void test_validation(void)
{
    ft_err err = {0};
    hsize_t dims[4] = {10, 1, 2, 2};
    long long lab[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    const char *p = tpath("v.h5");

    make_file(p, H5T_IEEE_F64LE, 4, dims, H5T_STD_I32LE, 10, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "v.h5");
    CHECK_STR_CONTAINS(err.msg, "\"inputs\" has type float64, expected float32");

    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I64LE, 10, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"labels\" has type int64, expected int32");

    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_U8LE, 10, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "uint8");

    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, -1, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "no dataset \"labels\"");

    make_file(p, H5T_IEEE_F32LE, 0, dims, H5T_STD_I32LE, 10, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "no dataset \"inputs\"");

    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 9, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"labels\" has 9 entries but \"inputs\" has 10 samples");

    make_file(p, H5T_IEEE_F32LE, 1, dims, H5T_STD_I32LE, 10, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "rank 1");
    CHECK_STR_CONTAINS(err.msg, "[10]");

    hsize_t zero[2] = {0, 3};
    make_file(p, H5T_IEEE_F32LE, 2, zero, H5T_STD_I32LE, 0, lab, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "N = 0");

    /* Labels out of the declared range: first bad row, its value, the range. */
    long long bad[10] = {0, 1, 2, 0, 1, 3, 0, 7, 2, 0};
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, bad, 3);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "row 5 has label 3");
    CHECK_STR_CONTAINS(err.msg, "[0, 3)");
    bad[5] = -1;
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, bad, -1);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "row 5 has label -1");
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, 0);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"classes\" is 0");

    /* No attribute: classes = max label + 1; with one, it wins. */
    ft_dataset d;
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, -1);
    CHECK(ft_dataset_open(&d, p, NULL, &err) == FT_OK);
    CHECK(d.classes == 3);
    ft_shape want = ft_shape3(1, 2, 2);
    CHECK(ft_shape_equal(&d.sample, &want));
    ft_dataset_close(&d);
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, 10);
    CHECK(ft_dataset_open(&d, p, NULL, &err) == FT_OK);
    CHECK(d.classes == 10);
    ft_dataset_close(&d);

    /* class_names: fixed-length (h5py bytes) and variable-length (str). */
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, -1);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t three = 3;
    hid_t sp = H5Screate_simple(1, &three, NULL);
    hid_t ft = H5Tcopy(H5T_C_S1);
    H5Tset_size(ft, 6);
    H5Tset_strpad(ft, H5T_STR_NULLPAD);
    hid_t a = H5Acreate2(f, "class_names", ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, ft, "cat\0\0\0dog\0\0\0bird\0\0");
    H5Aclose(a);
    H5Tclose(ft);
    H5Fclose(f);
    CHECK(ft_dataset_open(&d, p, NULL, &err) == FT_OK);
    CHECK(d.classes == 3 && d.nclass_names == 3);
    CHECK(!strcmp(d.class_names[0], "cat") && !strcmp(d.class_names[2], "bird"));
    ft_dataset_close(&d);

    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, 4);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t four = 4;
    hid_t sp4 = H5Screate_simple(1, &four, NULL);
    hid_t vt = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    H5Tset_cset(vt, H5T_CSET_UTF8);
    const char *names[4] = {"T-shirt/top", "Trouser", "Pullover", "Ankle boot"};
    a = H5Acreate2(f, "class_names", vt, sp4, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vt, names);
    H5Aclose(a);
    H5Fclose(f);
    CHECK(ft_dataset_open(&d, p, NULL, &err) == FT_OK);
    CHECK(d.classes == 4 && d.nclass_names == 4);
    CHECK(!strcmp(d.class_names[0], "T-shirt/top") && !strcmp(d.class_names[3], "Ankle boot"));
    ft_dataset_close(&d);
    /* Names disagreeing with "classes" are an error. */
    make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, 5);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    a = H5Acreate2(f, "class_names", vt, sp4, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vt, names);
    H5Aclose(a);
    H5Fclose(f);
    CHECK(open_msg(p, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"class_names\" has 4 names but \"classes\" is 5");
    H5Tclose(vt);
    H5Sclose(sp4);
    H5Sclose(sp);

    /* Not a file, not HDF5. */
    CHECK(open_msg(tpath("missing.h5"), NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "missing.h5: cannot open");
    const char *txt = tpath("text.h5");
    FILE *tf = fopen(txt, "w");
    fputs("hello\n", tf);
    fclose(tf);
    CHECK(open_msg(txt, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "text.h5: not an HDF5 file");

    /* A file locked by a writer: a clear message naming the override. (HDF5
     * reads the variable once at start-up, so the override is not tried here.) */
    if (!getenv("HDF5_USE_FILE_LOCKING")) {
        make_file(p, H5T_IEEE_F32LE, 4, dims, H5T_STD_I32LE, 10, lab, -1);
        int fd = open(p, O_RDWR);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            int rc = open_msg(p, NULL, &err);
            CHECK(rc == FT_EINPUT);
            if (rc)
                CHECK_STR_CONTAINS(err.msg, "HDF5_USE_FILE_LOCKING=FALSE");
        }
        if (fd >= 0)
            close(fd);
    }
}

static void test_epoch_order(void)
{
    enum { N = 1000 };
    static uint64_t a[N], b[N], c[N];
    static unsigned char seen[N];
    CHECK(ft_epoch_order(N, 7, 3, 1, a) == FT_OK);
    memset(seen, 0, sizeof seen);
    int ok = 1, moved = 0;
    for (int i = 0; i < N; i++) {
        ok &= a[i] < N && !seen[a[i]];
        if (a[i] < N)
            seen[a[i]] = 1;
        moved += a[i] != (uint64_t)i;
    }
    CHECK(ok);
    CHECK(moved > N / 2);
    ft_epoch_order(N, 7, 3, 1, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    ft_epoch_order(N, 7, 4, 1, c);
    CHECK(memcmp(a, c, sizeof a) != 0);
    ft_epoch_order(N, 8, 3, 1, c);
    CHECK(memcmp(a, c, sizeof a) != 0);
    ft_epoch_order(N, 7, 3, 0, c);
    ok = 1;
    for (int i = 0; i < N; i++)
        ok &= c[i] == (uint64_t)i;
    CHECK(ok);
    uint64_t one = 99;
    CHECK(ft_epoch_order(1, 7, 3, 1, &one) == FT_OK && one == 0);
    CHECK(ft_epoch_order(0, 7, 3, 1, NULL) == FT_OK);
}

static void test_kshot(void)
{
    enum { N = 300, C = 3, K = 4 };
    static int labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = (i * 7) % C == 2 && i % 5 ? 2 : (i * 7) % C; /* uneven classes */
    uint64_t a[C * K], b[C * K], n = 0, m = 0, have = 0;
    int sc = -1;
    CHECK(ft_kshot_select(labels, N, C, K, 11, a, &n, &sc, &have) == FT_OK);
    CHECK(n == C * K);
    int per[C] = {0}, sorted = 1, distinct = 1;
    for (uint64_t i = 0; i < n; i++) {
        per[labels[a[i]]]++;
        if (i > 0) {
            sorted &= a[i] > a[i - 1];
            distinct &= a[i] != a[i - 1];
        }
    }
    CHECK(per[0] == K && per[1] == K && per[2] == K);
    CHECK(sorted && distinct);
    /* the same seed draws the same rows; another seed other rows */
    CHECK(ft_kshot_select(labels, N, C, K, 11, b, &m, &sc, &have) == FT_OK && m == n);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(ft_kshot_select(labels, N, C, K, 12, b, &m, &sc, &have) == FT_OK);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* not just the first K rows of each class */
    int first_k = 1;
    for (uint64_t i = 0; i < (uint64_t)K; i++)
        first_k &= a[i] == i;
    CHECK(!first_k);
    /* a class with too few rows is named, with its count */
    int few[6] = {0, 0, 0, 1, 1, 0};
    CHECK(ft_kshot_select(few, 6, 2, 3, 1, b, &m, &sc, &have) == FT_EINPUT);
    CHECK(sc == 1 && have == 2);
    CHECK(ft_kshot_select(few, 6, 3, 1, 1, b, &m, &sc, &have) == FT_EINPUT && sc == 2 && !have);
}

static void test_split(void)
{
    int ok = 1;
    for (uint64_t count = 0; count <= 40; count++) {
        for (int parts = 1; parts <= 9; parts++) {
            uint64_t next = 0, minl = UINT64_MAX, maxl = 0;
            for (int p = 0; p < parts; p++) {
                uint64_t b, l;
                ft_split(count, parts, p, &b, &l);
                ok &= b == next; /* contiguous, in order: covers each item once */
                next = b + l;
                minl = l < minl ? l : minl;
                maxl = l > maxl ? l : maxl;
            }
            ok &= next == count && maxl - minl <= 1;
        }
    }
    CHECK(ok);
    uint64_t b, l;
    ft_split(10, 4, 0, &b, &l);
    CHECK(b == 0 && l == 3);
    ft_split(10, 4, 3, &b, &l);
    CHECK(b == 8 && l == 2);
    ft_split(2, 4, 3, &b, &l); /* fewer items than parts */
    CHECK(b == 2 && l == 0);
    ft_split(2, 4, 1, &b, &l);
    CHECK(b == 1 && l == 1);
}

/* ---- IDX ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

enum { IN = 25, IH = 3, IW = 4 };

static unsigned char pixel(int i, int k)
{
    return (unsigned char)((i * 7 + k * 13) % 256);
}

/* Writes IDX image and label files; truncate_images drops that many bytes. */
static void write_idx(const char *images, const char *labels, int gz, int nimg, int nlab,
                      int truncate_images)
{
    size_t len = 16 + (size_t)nimg * IH * IW;
    unsigned char *buf = malloc(len);
    put_be32(buf, 0x803);
    put_be32(buf + 4, (uint32_t)nimg);
    put_be32(buf + 8, IH);
    put_be32(buf + 12, IW);
    for (int i = 0; i < nimg; i++)
        for (int k = 0; k < IH * IW; k++)
            buf[16 + i * IH * IW + k] = pixel(i, k);
    len -= (size_t)truncate_images;
    unsigned char lab[8 + 64];
    put_be32(lab, 0x801);
    put_be32(lab + 4, (uint32_t)nlab);
    for (int i = 0; i < nlab; i++)
        lab[8 + i] = (unsigned char)(i % 10);
    if (gz) {
        gzFile g = gzopen(images, "wb");
        gzwrite(g, buf, (unsigned)len);
        gzclose(g);
        g = gzopen(labels, "wb");
        gzwrite(g, lab, (unsigned)(8 + nlab));
        gzclose(g);
    } else {
        FILE *f = fopen(images, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        f = fopen(labels, "wb");
        fwrite(lab, 1, (size_t)(8 + nlab), f);
        fclose(f);
    }
    free(buf);
}

static void check_idx_output(const char *out, const int *keep, int nkeep, float scale)
{
    ft_err err = {0};
    ft_dataset d;
    ft_shape want = ft_shape3(1, IH, IW);
    if (!CHECK(ft_dataset_open(&d, out, &want, &err) == FT_OK)) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    int expect_n = 0;
    int orig[IN];
    for (int i = 0; i < IN; i++) {
        int c = i % 10, m = nkeep ? -1 : c;
        for (int j = 0; j < nkeep; j++)
            if (keep[j] == c)
                m = j;
        if (m >= 0)
            orig[expect_n++] = i;
    }
    CHECK(d.n == (uint64_t)expect_n);
    CHECK(d.classes == (nkeep ? nkeep : 10));
    uint64_t idx[IN];
    float x[IN * IH * IW];
    int y[IN];
    for (int i = 0; i < expect_n; i++)
        idx[i] = (uint64_t)i;
    CHECK(ft_dataset_read(&d, idx, expect_n, x, y, &err) == FT_OK);
    int bad = 0;
    for (int r = 0; r < expect_n; r++) {
        int i = orig[r], c = i % 10, m = c;
        for (int j = 0; j < nkeep; j++)
            if (keep[j] == c)
                m = j;
        bad += y[r] != m;
        for (int k = 0; k < IH * IW; k++)
            bad += x[r * IH * IW + k] != (float)pixel(i, k) * scale;
    }
    CHECK(bad == 0);
    ft_dataset_close(&d);
}

static void test_import_idx(void)
{
    ft_err err = {0};
    uint64_t written = 0;
    const char *im = tpath("img.idx"), *lb = tpath("lab.idx");
    const char *img = tpath("img.idx.gz"), *lbg = tpath("lab.idx.gz");
    const char *out = tpath("idx.h5");
    write_idx(im, lb, 0, IN, IN, 0);
    write_idx(img, lbg, 1, IN, IN, 0);

    ft_import_opts o = {0};
    CHECK(ft_import_idx(im, lb, out, &o, &written, &err) == FT_OK);
    CHECK(written == IN);
    check_idx_output(out, NULL, 0, 1.0f / 255.0f);
    CHECK(no_tmp_left(out));

    /* gzipped, with a class filter that reorders (7 -> 0, 2 -> 1). */
    int keep[2] = {7, 2};
    o.keep = keep;
    o.nkeep = 2;
    o.scale = 0.5f;
    CHECK(ft_import_idx(img, lbg, out, &o, &written, &err) == FT_OK);
    CHECK(written == 5); /* labels i % 10 over 25 samples: 7 x2, 2 x3 */
    check_idx_output(out, keep, 2, 0.5f);

    /* Errors name the file and what was expected. */
    ft_import_opts plain = {0};
    CHECK(ft_import_idx(lb, im, out, &plain, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "img.idx"); /* read as the label file */
    CHECK_STR_CONTAINS(err.msg, "swapped");
    const char *tim = tpath("trunc.idx.gz"), *tlb = tpath("trunc-lab.idx.gz");
    write_idx(tim, tlb, 1, IN, IN, 30);
    CHECK(ft_import_idx(tim, tlb, tpath("t.h5"), &plain, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "trunc.idx.gz: truncated");
    CHECK(!exists(tpath("t.h5")));
    CHECK(no_tmp_left(tpath("t.h5")));
    write_idx(tim, tlb, 0, IN, IN - 1, 0);
    CHECK(ft_import_idx(tim, tlb, tpath("t.h5"), &plain, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "has 25 images but");
    CHECK_STR_CONTAINS(err.msg, "has 24 labels");
    CHECK(ft_import_idx(tpath("nope.gz"), lb, out, &plain, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "nope.gz: cannot open");
    int none[1] = {11};
    ft_import_opts o2 = {.keep = none, .nkeep = 1};
    CHECK(ft_import_idx(im, lb, tpath("t.h5"), &o2, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "no sample");
    int dup[2] = {3, 3};
    ft_import_opts o3 = {.keep = dup, .nkeep = 2};
    CHECK(ft_import_idx(im, lb, tpath("t.h5"), &o3, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "twice");
    /* Corrupt gzip stream. */
    const char *cg = tpath("corrupt.gz");
    FILE *f = fopen(cg, "wb");
    const unsigned char junk[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff};
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    CHECK(ft_import_idx(cg, lb, tpath("t.h5"), &plain, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "corrupt.gz");
}

/* ---- CSV ---- */

static const char *write_text(const char *name, const char *text)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_import_csv(void)
{
    ft_err err = {0};
    uint64_t written = 0;
    const char *out = tpath("csv.h5");
    const char *csv = write_text("iris.csv", "a,b,c,label\n"
                                             "1.5,2,3,0\n"
                                             "\n"
                                             "4,5.25,-6,2\r\n"
                                             " 7 , 8e1 ,\"9\", 1\n"
                                             "10,11,12,2\n");
    ft_import_opts o = {.label_column = -1, .header = -1};
    CHECK(ft_import_csv(csv, out, &o, &written, &err) == FT_OK);
    CHECK(written == 4);
    ft_dataset d;
    ft_shape want = ft_shape1(3);
    CHECK(ft_dataset_open(&d, out, &want, &err) == FT_OK);
    CHECK(d.n == 4 && d.classes == 3);
    uint64_t idx[4] = {3, 2, 1, 0};
    float x[12];
    int y[4];
    CHECK(ft_dataset_read(&d, idx, 4, x, y, &err) == FT_OK);
    CHECK(y[0] == 2 && y[1] == 1 && y[2] == 2 && y[3] == 0);
    CHECK(x[0] == 10 && x[3] == 7 && x[4] == 80 && x[5] == 9 && x[7] == 5.25f && x[8] == -6);
    CHECK(x[9] == 1.5f);
    ft_dataset_close(&d);

    /* Label first, no header, semicolons, class filter {2, 0}. */
    const char *csv2 = write_text("semi.csv", "2;0.5;1\n0;1.5;2\n1;2.5;3\n2;3.5;4\n");
    int keep[2] = {2, 0};
    ft_import_opts o2 = {.keep = keep, .nkeep = 2, .label_column = 0, .header = -1};
    CHECK(ft_import_csv(csv2, out, &o2, &written, &err) == FT_OK);
    CHECK(written == 3);
    want = ft_shape1(2);
    CHECK(ft_dataset_open(&d, out, &want, &err) == FT_OK);
    CHECK(d.classes == 2);
    uint64_t seq[3] = {0, 1, 2};
    CHECK(ft_dataset_read(&d, seq, 3, x, y, &err) == FT_OK);
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 0);
    CHECK(x[0] == 0.5f && x[1] == 1 && x[2] == 1.5f && x[4] == 3.5f);
    ft_dataset_close(&d);

    /* Errors: file:line:column and what was expected. */
    const char *bad = write_text("bad.csv", "x,y,label\n1,2,0\n3,oops,1\n");
    CHECK(ft_import_csv(bad, out, &o, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bad.csv:3:2");
    CHECK_STR_CONTAINS(err.msg, "\"y\"");
    CHECK_STR_CONTAINS(err.msg, "oops");
    const char *badlab = write_text("badlab.csv", "1,2,0\n3,4,1.5\n");
    CHECK(ft_import_csv(badlab, out, &o, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "badlab.csv:2:3");
    CHECK_STR_CONTAINS(err.msg, "integer");
    const char *ragged = write_text("ragged.csv", "1,2,0\n3,4\n");
    CHECK(ft_import_csv(ragged, out, &o, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "ragged.csv:2: 2 columns, expected 3");
    const char *neg = write_text("neg.csv", "1,2,-1\n");
    CHECK(ft_import_csv(neg, out, &o, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "neg.csv:1:3");
    const char *hdr = write_text("hdr.csv", "a,b,label\n");
    CHECK(ft_import_csv(hdr, out, &o, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "no data rows");
    ft_import_opts o3 = {.label_column = 5, .header = 0};
    CHECK(ft_import_csv(csv2, out, &o3, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "label column 5");
    /* --no-header on a file with a header: the header is bad data. */
    ft_import_opts o4 = {.label_column = -1, .header = 0};
    CHECK(ft_import_csv(csv, tpath("nh.h5"), &o4, &written, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "iris.csv:1:1");
    CHECK(!exists(tpath("nh.h5")));
}

/* Writes a [n, T] dataset plus an int32 "lengths" of the given type and count. */
static const char *lengths_file(const char *name, const int *len, hsize_t count, hid_t type)
{
    const char *path = tpath(name);
    enum { N = 4, T = 5 };
    ft_shape s = ft_shape1(T);
    ft_err err = {0};
    ft_dataset_writer w;
    float x[N * T];
    int y[N] = {0, 1, 0, 1};
    for (int i = 0; i < N * T; i++)
        x[i] = (float)i;
    CHECK(ft_dataset_create(&w, path, N, &s, 2, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, x, y, N, &err) == FT_OK);
    CHECK(ft_dataset_finish(&w, &err) == FT_OK);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, &count, NULL);
    hid_t ds = H5Dcreate2(f, "lengths", type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Tget_class(type) == H5T_INTEGER)
        H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, len);
    else {
        float fl[8];
        for (hsize_t i = 0; i < count && i < 8; i++)
            fl[i] = (float)len[i];
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fl);
    }
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    return path;
}

/* The optional "lengths" dataset: read with the rows of a batch (any order), validated. */
static void test_lengths(void)
{
    ft_err err = {0};
    ft_dataset d;
    const int good[4] = {5, 0, 3, 1};
    CHECK(ft_dataset_open(&d, lengths_file("len.h5", good, 4, H5T_STD_I32LE), NULL, &err) == FT_OK);
    CHECK(d.lengths != NULL);
    const uint64_t idx[3] = {2, 0, 2};
    float x[15];
    int y[3], len[3] = {-1, -1, -1}, has = 0;
    CHECK(ft_dataset_read_len(&d, idx, 3, x, y, len, &has, &err) == FT_OK);
    CHECK(has == 1 && len[0] == 3 && len[1] == 5 && len[2] == 3);
    CHECK(x[0] == 10.0f && y[1] == 0);
    ft_dataset_close(&d);
    CHECK(d.lengths == NULL);

    const int bad[4] = {5, 0, 6, 1}; /* row 2 longer than the 5 positions */
    CHECK(ft_dataset_open(&d, lengths_file("len_big.h5", bad, 4, H5T_STD_I32LE), NULL, &err) ==
          FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "len_big.h5: dataset \"lengths\" row 2 is 6, expected 0 to 5");
    const int neg[4] = {5, -1, 2, 1};
    CHECK(ft_dataset_open(&d, lengths_file("len_neg.h5", neg, 4, H5T_STD_I32LE), NULL, &err) ==
          FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "row 1 is -1");
    CHECK(ft_dataset_open(&d, lengths_file("len_n.h5", good, 3, H5T_STD_I32LE), NULL, &err) ==
          FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"lengths\" has shape [3], expected [4]");
    CHECK(ft_dataset_open(&d, lengths_file("len_f.h5", good, 4, H5T_IEEE_F32LE), NULL, &err) ==
          FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "expected int32");

    /* without "lengths": reads say so */
    const char *plain = tpath("len_none.h5");
    ft_shape s = ft_shape1(5);
    ft_dataset_writer w;
    float px[5] = {0};
    int py[1] = {0};
    CHECK(ft_dataset_create(&w, plain, 1, &s, 2, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, px, py, 1, &err) == FT_OK);
    CHECK(ft_dataset_finish(&w, &err) == FT_OK);
    CHECK(ft_dataset_open(&d, plain, NULL, &err) == FT_OK);
    const uint64_t z = 0;
    has = 1;
    CHECK(ft_dataset_read_len(&d, &z, 1, x, y, len, &has, &err) == FT_OK && has == 0);
    ft_dataset_close(&d);
}

/* Adds an int32 [count] dataset to a file. */
static void add_ints(const char *path, const char *name, const int *v, hsize_t count)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, &count, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(ds >= 0);
    H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
}

/* The optional "prompt_lengths" of source -> target rows: 1 <= p <= the row's length. */
static void test_prompt_lengths(void)
{
    ft_err err = {0};
    ft_dataset d;
    const int len[4] = {5, 1, 3, 2};
    const int good[4] = {2, 1, 3, 1};
    const char *path = lengths_file("pl.h5", len, 4, H5T_STD_I32LE);
    add_ints(path, "prompt_lengths", good, 4);
    CHECK(ft_dataset_open(&d, path, NULL, &err) == FT_OK);
    const uint64_t idx[3] = {3, 0, 2};
    int p[3] = {0, 0, 0};
    CHECK(ft_dataset_prompts(&d, idx, 3, p) == 1);
    CHECK(p[0] == 1 && p[1] == 2 && p[2] == 3);
    CHECK(ft_dataset_prompts(&d, idx, 3, NULL) == 0);
    ft_dataset_close(&d);
    CHECK(d.prompt_lengths == NULL);

    const int zero[4] = {2, 1, 3, 0}; /* row 3: an empty prompt */
    path = lengths_file("pl0.h5", len, 4, H5T_STD_I32LE);
    add_ints(path, "prompt_lengths", zero, 4);
    CHECK(ft_dataset_open(&d, path, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg,
                       "pl0.h5: dataset \"prompt_lengths\" row 3 is 0, expected 1 to 2 (the "
                       "row's \"lengths\" entry)");
    const int longer[4] = {2, 2, 3, 1}; /* row 1: beyond its length 1 */
    path = lengths_file("pl_long.h5", len, 4, H5T_STD_I32LE);
    add_ints(path, "prompt_lengths", longer, 4);
    CHECK(ft_dataset_open(&d, path, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "row 1 is 2, expected 1 to 1");
    path = lengths_file("pl_n.h5", len, 4, H5T_STD_I32LE);
    add_ints(path, "prompt_lengths", good, 3);
    CHECK(ft_dataset_open(&d, path, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "\"prompt_lengths\" has shape [3], expected [4]");

    /* without "lengths" the bound is the row's positions (T = 5) */
    const char *plain = tpath("pl_nolen.h5");
    ft_shape s = ft_shape1(5);
    ft_dataset_writer w;
    float px[10] = {0};
    int py[2] = {0, 0};
    CHECK(ft_dataset_create(&w, plain, 2, &s, 2, &err) == FT_OK);
    CHECK(ft_dataset_append(&w, px, py, 2, &err) == FT_OK);
    CHECK(ft_dataset_finish(&w, &err) == FT_OK);
    const int six[2] = {5, 6};
    add_ints(plain, "prompt_lengths", six, 2);
    CHECK(ft_dataset_open(&d, plain, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "row 1 is 6, expected 1 to 5 (the row's positions)");
}

int main(void)
{
    test_lengths();
    test_prompt_lengths();
    test_round_trip();
    test_chunked_big_endian();
    test_validation();
    test_epoch_order();
    test_split();
    test_kshot();
    test_import_idx();
    test_import_csv();
    return tu_done("test_data");
}
