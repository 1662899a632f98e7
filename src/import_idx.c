/* IDX files (MNIST, Fashion-MNIST), plain or gzipped: unsigned-byte images
 * [N, rows, cols] (magic 0x00000803) and labels [N] (magic 0x00000801).
 * Output: inputs [N, 1, rows, cols] float32, labels int32. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ftune/data.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define IMAGES_PER_CHUNK 1024
#define MAX_PIXELS (1 << 24)
#define CHUNK_PIXELS ((size_t)1 << 22)

static gzFile open_gz(const char *path, ft_err *err)
{
    errno = 0;
    /* gzopen reads plain files transparently, so either form works. */
    gzFile g = gzopen(path, "rb");
    if (!g) {
        ft_fail(err, FT_EINPUT, "%s: cannot open: %s", path,
                errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(g, 1 << 17);
    return g;
}

/* Reads len bytes; returns the count read (< len at end of file) or -1 on
 * a read or decompression error (message in err). */
static long long read_full(gzFile g, const char *path, void *buf, size_t len, ft_err *err)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got > (1u << 30) ? (1u << 30) : len - got;
        int r = gzread(g, (char *)buf + got, (unsigned)want);
        if (r < 0 || (r == 0 && !gzeof(g))) {
            int code;
            const char *msg = gzerror(g, &code);
            if (code == Z_ERRNO)
                ft_fail(err, FT_EINPUT, "%s: read error: %s", path, strerror(errno));
            else
                ft_fail(err, FT_EINPUT, "%s: corrupt gzip data: %s", path, msg);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* Reads and checks the header; dims receives ndims big-endian sizes. */
static int read_header(gzFile g, const char *path, uint32_t magic_want, int ndims, uint32_t *dims,
                       ft_err *err)
{
    unsigned char h[4 + 4 * 3];
    size_t len = 4 + 4 * (size_t)ndims;
    long long got = read_full(g, path, h, len, err);
    if (got < 0)
        return err->code;
    if (got < 4)
        return ft_fail(err, FT_EINPUT, "%s: too short for an IDX file (%lld bytes)", path, got);
    uint32_t magic = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (magic != magic_want) {
        const char *what = magic_want == IDX_IMAGES ? "unsigned-byte images [N, rows, cols]"
                                                    : "unsigned-byte labels [N]";
        const char *hint = "";
        if (magic == IDX_LABELS && magic_want == IDX_IMAGES)
            hint = " (this is a label file: are --images and --labels swapped?)";
        else if (magic == IDX_IMAGES && magic_want == IDX_LABELS)
            hint = " (this is an image file: are --images and --labels swapped?)";
        else if ((magic >> 16) != 0)
            hint = " (not an IDX file)";
        else if (((magic >> 8) & 0xff) != 0x08)
            hint = " (only unsigned-byte data, type 0x08, is supported)";
        return ft_fail(err, FT_EINPUT, "%s: IDX magic 0x%08x, expected 0x%08x for %s%s", path,
                       magic, magic_want, what, hint);
    }
    if (got < (long long)len)
        return ft_fail(err, FT_EINPUT, "%s: truncated IDX header", path);
    for (int i = 0; i < ndims; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    return FT_OK;
}

/* class -> output label (-1: dropped). keep[] must be distinct, 0..255. */
static int build_map(const ft_import_opts *o, int map[256], ft_err *err)
{
    int nkeep = o ? o->nkeep : 0;
    for (int c = 0; c < 256; c++)
        map[c] = nkeep ? -1 : c;
    for (int i = 0; i < nkeep; i++) {
        int c = o->keep[i];
        if (c < 0 || c > 255)
            return ft_fail(err, FT_EINPUT, "class %d is not an IDX label (0 to 255)", c);
        if (map[c] >= 0)
            return ft_fail(err, FT_EINPUT, "class %d is listed twice", c);
        map[c] = i;
    }
    return FT_OK;
}

int ft_import_idx(const char *images, const char *labels, const char *out, const ft_import_opts *o,
                  uint64_t *written, ft_err *err)
{
    if (written)
        *written = 0;
    float scale = o && o->scale != 0.0f ? o->scale : 1.0f / 255.0f;
    int map[256];
    int rc = build_map(o, map, err);
    if (rc)
        return rc;

    /* Labels first: one byte each, small enough to keep for counting. */
    gzFile gl = open_gz(labels, err);
    if (!gl)
        return err->code;
    uint32_t nl = 0;
    unsigned char *lab = NULL;
    rc = read_header(gl, labels, IDX_LABELS, 1, &nl, err);
    /* The buffer grows with the data actually read, so a header that claims 4 billion labels
     * in a short file costs nothing. */
    size_t have = 0, cap = 0;
    while (!rc && have < nl) {
        if (have == cap) {
            size_t ncap = cap ? 2 * cap : 1u << 16;
            unsigned char *nb = realloc(lab, ncap < nl ? ncap : nl);
            if (!nb) {
                rc = ft_fail(err, FT_ERUNTIME, "out of memory for %u labels", nl);
                break;
            }
            lab = nb;
            cap = ncap < nl ? ncap : nl;
        }
        long long got = read_full(gl, labels, lab + have, cap - have, err);
        if (got < 0)
            rc = err->code;
        else if (got < (long long)(cap - have))
            rc = ft_fail(err, FT_EINPUT, "%s: truncated: header says %u labels, file has %llu",
                         labels, nl, (unsigned long long)(have + (size_t)got));
        else
            have += (size_t)got;
    }
    gzclose(gl);
    if (rc) {
        free(lab);
        return rc;
    }

    uint64_t kept = 0;
    int maxlab = -1;
    for (uint32_t i = 0; i < nl; i++) {
        if (map[lab[i]] >= 0)
            kept++;
        if (lab[i] > maxlab)
            maxlab = lab[i];
    }

    gzFile gi = open_gz(images, err);
    if (!gi) {
        free(lab);
        return err->code;
    }
    uint32_t dims[3] = {0, 0, 0};
    rc = read_header(gi, images, IDX_IMAGES, 3, dims, err);
    if (!rc && dims[0] != nl)
        rc = ft_fail(err, FT_EINPUT, "%s has %u images but %s has %u labels", images, dims[0],
                     labels, nl);
    if (!rc && (dims[1] == 0 || dims[2] == 0 || (uint64_t)dims[1] * dims[2] > MAX_PIXELS))
        rc = ft_fail(err, FT_EINPUT, "%s: unusable image size %ux%u", images, dims[1], dims[2]);
    if (!rc && nl == 0)
        rc = ft_fail(err, FT_EINPUT, "%s: no samples", labels);
    if (!rc && kept == 0)
        rc = ft_fail(err, FT_EINPUT, "%s: no sample has one of the selected classes", labels);
    if (rc) {
        gzclose(gi);
        free(lab);
        return rc;
    }

    /* Keeping classes renumbers them 0..k-1; otherwise MNIST-style files
     * declare at least 10 so that a subset keeps the full label space. */
    int classes = o && o->nkeep ? o->nkeep : (maxlab + 1 > 10 ? maxlab + 1 : 10);
    size_t pix = (size_t)dims[1] * dims[2];
    ft_shape sample = ft_shape3(1, (int)dims[1], (int)dims[2]);
    ft_dataset_writer w;
    /* a chunk of at most ~4 MiB of pixels (one image at least), whatever the header says */
    uint32_t per_chunk = pix >= CHUNK_PIXELS / IMAGES_PER_CHUNK
                             ? (uint32_t)(CHUNK_PIXELS / pix > 0 ? CHUNK_PIXELS / pix : 1)
                             : IMAGES_PER_CHUNK;
    unsigned char *raw = malloc(per_chunk * pix);
    float *x = ft_alloc_floats(per_chunk * pix, err);
    int *y = malloc(per_chunk * sizeof *y);
    if (!raw || !x || !y) {
        rc = ft_fail(err, FT_ERUNTIME, "out of memory for %u images of %ux%u", per_chunk, dims[1],
                     dims[2]);
    } else {
        rc = ft_dataset_create(&w, out, kept, &sample, classes, err);
    }
    for (uint32_t start = 0; !rc && start < nl; start += per_chunk) {
        uint32_t cnt = nl - start < per_chunk ? nl - start : per_chunk;
        long long got = read_full(gi, images, raw, cnt * pix, err);
        if (got < 0) {
            rc = err->code;
        } else if (got < (long long)(cnt * pix)) {
            rc = ft_fail(err, FT_EINPUT,
                         "%s: truncated: header says %u images of %ux%u, file ends in image %llu",
                         images, nl, dims[1], dims[2],
                         (unsigned long long)(start + (uint64_t)got / pix));
        }
        uint64_t m = 0;
        for (uint32_t i = 0; !rc && i < cnt; i++) {
            int c = map[lab[start + i]];
            if (c < 0)
                continue;
            const unsigned char *src = raw + (size_t)i * pix;
            float *dst = x + m * pix;
            for (size_t k = 0; k < pix; k++)
                dst[k] = (float)src[k] * scale;
            y[m++] = c;
        }
        if (!rc)
            rc = ft_dataset_append(&w, x, y, m, err);
        if (rc)
            ft_dataset_abort(&w);
    }
    if (!rc && (rc = ft_dataset_finish(&w, err)) == 0 && written)
        *written = kept;
    gzclose(gi);
    free(lab);
    free(raw);
    ft_free_floats(x);
    free(y);
    return rc;
}
