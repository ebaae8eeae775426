/* The deep3d weights file: model files (weights/<name>.d3w) and training checkpoints.
 *
 * One file holds a model configuration (UTF-8 "key=value" lines written by the
 * caller), named tensors (float32 or float16, up to NN_MAX_DIMS dimensions, data
 * aligned to 64 bytes) and a CRC-32 over the whole file. The byte layout, the
 * versioning rule and the configuration keys deep3d uses are in weights/FORMAT.md.
 * A checkpoint is the same file with extra tensors ("optim.<role>.<param name>")
 * and extra keys (step, seed, ...): this module does not distinguish the two.
 *
 * Errors follow nn/status.h: -1 or NULL, and one line from nn_last_error() naming
 * the file and what is wrong ("weights file F is truncated: 100 of 2048 bytes").
 * Models of the idea: GGUF (ggml) for the header, tensor table and 64-byte alignment;
 * PNG for the magic bytes and the CRC-32 (GGUF has no checksum; ours has one).
 */
#ifndef NN_WEIGHTS_H
#define NN_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* The format version this code writes, and the newest it reads (weights/FORMAT.md). */
#define NN_WEIGHTS_VERSION 1

/* Storage type of one tensor in the file. Values are the on-disk codes. */
typedef enum { NN_WEIGHTS_F32 = 0, NN_WEIGHTS_F16 = 1 } nn_weights_dtype;

/* One tensor of an open file, as listed by nn_weights_tensor(). */
typedef struct nn_weights_info {
    const char *name;            /* "conv1_1.weight"; owned by the file */
    nn_weights_dtype dtype;      /* how it is stored (values are nn_real once read) */
    int ndim;                    /* 1..NN_MAX_DIMS */
    int shape[NN_MAX_DIMS];      /* outermost first, as nn_tensor.shape */
    size_t numel;
} nn_weights_info;

typedef struct nn_weights_file nn_weights_file;

/* Writes a weights file atomically (nn/atomic_file.h): the bytes go to a temporary
 * "<folder>/.deep3d-XXXXXX", which is flushed, fsync'ed and renamed over `path`; the
 * folder is then fsync'ed (best effort). On any failure the temporary file is removed,
 * an existing `path` is left untouched, and -1 is returned with "cannot save weights
 * file <path>: <why>".
 *   config_text  "key=value\n" lines (NULL = none). Keys are [A-Za-z0-9_.-]+, values
 *                are UTF-8 without control characters, stored verbatim (no trimming);
 *                empty lines are allowed; a key may appear once.
 *   tensors      n tensors on any device (read with nn_tensor_download).
 *   names        n names, or NULL to use each tensor's own t->name. Names are
 *                1..255 printable ASCII characters without spaces, all different.
 *   dtype        NN_WEIGHTS_F32 (exact) or NN_WEIGHTS_F16 (nn_float_to_half: IEEE
 *                binary16, round to nearest even; half the size). With F16, a tensor
 *                holding a finite value of magnitude >= 65520 (it would become inf
 *                in binary16) is stored as F32 instead; nn_weights_tensor() shows it.
 * A symbolic link at `path` is replaced by the file, not followed.
 * Source: the write-temp-fsync-rename pattern (POSIX rename(2) replaces atomically). */
int nn_weights_save(const char *path, const char *config_text, nn_tensor *const *tensors,
                    const char *const *names, int n, nn_weights_dtype dtype);

/* Opens a weights file: reads it whole into memory (until nn_weights_close), checks
 * magic, version, size and CRC-32, and parses the configuration and tensor table.
 * Returns NULL + one line naming the file on: a missing/unreadable file, a foreign
 * file ("F is not a deep3d weights file"), a newer format version, a truncated file,
 * a checksum mismatch or an inconsistent table ("... is corrupted: ..."). */
nn_weights_file *nn_weights_open(const char *path);

/* Frees everything of an open file (NULL-safe). */
void nn_weights_close(nn_weights_file *f);

/* The path the file was opened with. */
const char *nn_weights_path(const nn_weights_file *f);

/* The configuration text exactly as saved (NUL-terminated; "" if none). */
const char *nn_weights_config(const nn_weights_file *f);

/* The value of `key` in the configuration (NUL-terminated, owned by f), or NULL
 * when the key is absent. Records no error: use it for optional keys. */
const char *nn_weights_config_get(const nn_weights_file *f, const char *key);

/* The value of a required key: as a string, as a base-10 integer (strtol, the whole
 * value must be consumed) or as a finite double (strtod, whole value). -1 + nn_fail
 * "weights file F: config has no key 'width'" or "... config key 'width' is 'abc',
 * not an integer". 64-bit unsigned values (seeds >= 2^63) go through _str+strtoull. */
int nn_weights_config_str(const nn_weights_file *f, const char *key, const char **out);
int nn_weights_config_int(const nn_weights_file *f, const char *key, long *out);
int nn_weights_config_double(const nn_weights_file *f, const char *key, double *out);

/* Number of tensors in the file, and the i-th of them (0 <= i < count; table order,
 * which is the order they were saved in; NULL if i is out of range). */
int nn_weights_count(const nn_weights_file *f);
const nn_weights_info *nn_weights_tensor(const nn_weights_file *f, int i);

/* 1 if the file has a tensor of that name, else 0. */
int nn_weights_has(const nn_weights_file *f, const char *name);

/* Reads tensor `name` into dst (any device: converted to nn_real on the host, then
 * uploaded with nn_tensor_upload). dst's shape must equal the stored one. Errors:
 * "weights file F has no tensor 'conv1_1.weight'",
 * "weights file F: tensor 'X' has shape (a, b), the model expects (c, d)",
 * out of memory, or the device's upload error. */
int nn_weights_read(const nn_weights_file *f, const char *name, nn_tensor *dst);

/* IEEE 754 binary16 <-> binary32. nn_float_to_half rounds to nearest, ties to even;
 * magnitudes >= 65520 become inf, those <= 2^-25 become (signed) zero, subnormal
 * halves are produced in between; inf keeps its sign; NaN stays NaN (quiet, sign and
 * top payload bits kept). nn_half_to_float is exact (every binary16 is a binary32).
 * Source: IEEE 754-2008 sec. 3.6 (binary16) and 4.3.1 (roundTiesToEven). In the
 * float64 build, saving to F16 rounds double -> float -> half (two roundings). */
uint16_t nn_float_to_half(float x);
float nn_half_to_float(uint16_t h);

/* CRC-32 (IEEE 802.3 / zlib / PNG: reflected polynomial 0xEDB88320, initial value and
 * final xor 0xFFFFFFFF) of n bytes, continuing from `crc` (0 to start):
 * nn_crc32(nn_crc32(0, a, na), b, nb) == CRC of a followed by b. Check value:
 * nn_crc32(0, "123456789", 9) == 0xCBF43926 (CRC RevEng catalogue, CRC-32/ISO-HDLC).
 * Slicing-by-8 table method (Kounavis & Berry, Intel 2005). */
uint32_t nn_crc32(uint32_t crc, const void *data, size_t n);

#endif
