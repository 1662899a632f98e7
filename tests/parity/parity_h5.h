/* Small HDF5 helpers for the parity harnesses (tests/parity): the cases are
 * written by Python (h5py) and the results read back by it. Every failure
 * prints a message naming the object and exits with status 1: these are
 * test tools, not library code. */
#ifndef FTUNE_PARITY_H5_H
#define FTUNE_PARITY_H5_H

#include <hdf5.h>
#include <stddef.h>

#include "ftune/kv.h"
#include "ftune/layer.h"

#define PH_MAX_RANK 8

typedef struct ph_array {
    int rank;
    hsize_t dims[PH_MAX_RANK];
    size_t count;
    void *data; /* float or int, malloc'd (at least one element) */
} ph_array;

/* Prints "parity harness: <message>" to stderr and exits with status 1. */
void ph_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

int ph_exists(hid_t loc, const char *name);
/* Reads a whole dataset as float32 or int32 (converted by HDF5). */
ph_array ph_read_floats(hid_t loc, const char *name);
ph_array ph_read_ints(hid_t loc, const char *name);
void ph_array_free(ph_array *a);

/* Writes a float32 dataset (rank 0 = scalar). */
void ph_write_floats(hid_t loc, const char *name, const float *data, int rank, const hsize_t *dims);
void ph_write_double_attr(hid_t loc, const char *name, double v);

/* Attribute getters with defaults when the attribute is absent. */
double ph_attr_double(hid_t loc, const char *name, double dflt);
long long ph_attr_long(hid_t loc, const char *name, long long dflt);
/* Copies a string attribute into buf; dflt when absent. */
void ph_attr_str(hid_t loc, const char *name, const char *dflt, char *buf, size_t len);

/* Opens or creates a group. */
hid_t ph_group(hid_t loc, const char *name, int create);

/* malloc'd floats set to fill; dies when out of memory */
float *ph_alloc_floats(size_t n, float fill);
/* The kv/ attributes of case group g as an ft_kvlist typed by the kind's keys. */
void ph_read_kv(hid_t g, const char *cname, const ft_layer_ops *ops, ft_kvlist *kv);
/* n rows of shape s, and a parameter with its own shape. */
void ph_write_shaped(hid_t loc, const char *name, const float *data, int n, const ft_shape *s);
void ph_write_param(hid_t loc, const ft_param *p, const float *data);

#endif
