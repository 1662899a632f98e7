/* Fuzzes `ftune data import-idx`. Input: 1 byte of options, 4 bytes (little-endian, modulo
 * the rest) giving the length of the label file, the label file, then the image file. Either
 * file may be gzipped (zlib reads plain files transparently). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ftune/data.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t opt = data[0];
    uint32_t k = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
                 (uint32_t)data[4] << 24;
    data += 5;
    size -= 5;
    size_t nl = size ? k % (size + 1) : 0;
    char labels[512], images[512], out[512];
    fz_write(labels, sizeof labels, "labels.idx", data, nl);
    fz_write(images, sizeof images, "images.idx", data + nl, size - nl);
    fz_path(out, sizeof out, "idx-out.h5");

    static const int keep[] = {3, 1, 7};
    ft_import_opts o = {0};
    o.nkeep = opt & 1 ? 3 : 0;
    o.keep = keep;
    o.scale = opt & 2 ? 1.0f : 0.0f;
    ft_err err = {0};
    uint64_t written = 0;
    int rc = ft_import_idx(images, labels, out, &o, &written, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        /* what was written must open as a dataset */
        ft_dataset d;
        ft_err e2 = {0};
        int rc2 = ft_dataset_open(&d, out, NULL, &e2);
        if (rc2 != FT_OK || d.n != written) {
            fprintf(stderr, "imported file does not open: %s\n", e2.msg);
            abort();
        }
        ft_dataset_close(&d);
    }
    remove(out);
    return 0;
}
