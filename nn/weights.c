/* The deep3d weights file (see weights.h for the API, weights/FORMAT.md for the bytes).
 *
 * Layout, all integers little-endian:
 *   header (64 bytes) | config text | pad to 8 | tensor table | pad to 64 |
 *   tensor data, each at a multiple of 64 | CRC-32 of everything before it (4 bytes)
 * Saving streams the file (one tensor in host memory at a time); opening reads it
 * whole, checks the CRC, then parses with every offset bounds-checked.
 */
#include "weights.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "status.h"

/* "\x89D3W\r\n\x1a\n": like PNG's signature, the high byte catches 7-bit transfers,
 * the CR LF / LF pair catches newline conversion, ^Z stops a DOS `type`. */
static const unsigned char MAGIC[8] = {0x89, 'D', '3', 'W', '\r', '\n', 0x1a, '\n'};

enum {
    HEADER_BYTES = 64,
    ENTRY_FIXED = 60,     /* table entry before the name */
    FILE_MAX_DIMS = 8,    /* shape slots in a table entry */
    MAX_NAME = 255,
    DATA_ALIGN = 64,
    CRC_BYTES = 4,
    CHUNK = 16384,        /* elements converted per fwrite */
};

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

/* ---- CRC-32 ----------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t nn_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ get_u32(p), hi = get_u32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    }
    for (; n; p++, n--) c = (c >> 8) ^ crc_table[0][(c ^ *p) & 0xff];
    return ~c;
}

/* ---- binary16 --------------------------------------------------------------- */

uint16_t nn_float_to_half(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)   /* inf, or NaN made quiet with its top payload bits */
        return a == 0x7f800000u ? (uint16_t)(sign | 0x7c00u)
                                : (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* >= 65520: rounds past 65504 */
    if (a < 0x38800000u) {                                    /* < 2^-14: subnormal half or 0 */
        if (a <= 0x33000000u) return sign;                    /* <= 2^-25: the tie goes to 0 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;             /* value = m * 2^(e - 150) */
        int shift = 126 - (int)(a >> 23);                     /* half = m * 2^(e-150+24); 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;     /* may carry into 2^-14: fine */
        return (uint16_t)(sign | r);
    }
    uint32_t r = (a - 0x38000000u) >> 13, rem = a & 0x1fffu;  /* rebias 127 -> 15 */
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;   /* carry into exponent: fine */
    return (uint16_t)(sign | r);
}

float nn_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {                               /* zero or subnormal: m * 2^-24, exact */
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    if (e == 31) u = sign | 0x7f800000u | (m << 13);
    else u = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- names and configuration text -------------------------------------------- */

/* 1 if s is a valid tensor name (1..255 printable ASCII, no space). */
static int valid_name(const char *s, size_t len) {
    if (len < 1 || len > MAX_NAME) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if malformed. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07u;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

typedef struct config {
    char *store;     /* the text with '=' and '\n' replaced by NULs */
    char **keys, **values;
    int n;
} config;

static void config_free(config *c) {
    free(c->store), free(c->keys), free(c->values);
    memset(c, 0, sizeof *c);
}

/* Splits `len` bytes of "key=value\n" lines into c. On a malformed text returns -1
 * with the reason in why[] (no nn_fail: the caller adds the file name). */
static int config_parse(const char *text, size_t len, config *c, char *why, size_t why_size) {
    memset(c, 0, sizeof *c);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    c->store = malloc(len + 1);
    c->keys = malloc(lines * sizeof *c->keys);
    c->values = malloc(lines * sizeof *c->values);
    if (!c->store || !c->keys || !c->values) {
        snprintf(why, why_size, "out of memory");
        goto fail;
    }
    memcpy(c->store, text, len);
    c->store[len] = '\0';
    int line_no = 0;
    for (size_t start = 0; start < len;) {
        line_no++;
        char *line = c->store + start;
        size_t end = start;
        while (end < len && c->store[end] != '\n') end++;
        size_t line_len = end - start;
        start = end + 1;
        if (line_len == 0) continue;
        size_t eq = 0;
        while (eq < line_len && line[eq] != '=') eq++;
        if (eq == line_len) {
            snprintf(why, why_size, "config line %d ('%.*s') is not key=value", line_no,
                     (int)(line_len > 40 ? 40 : line_len), line);
            goto fail;
        }
        if (eq == 0) {
            snprintf(why, why_size, "config line %d has an empty key", line_no);
            goto fail;
        }
        for (size_t i = 0; i < eq; i++) {
            char ch = line[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '.' || ch == '-')) {
                snprintf(why, why_size,
                         "config line %d: key characters are A-Z a-z 0-9 _ . - (byte 0x%02x)",
                         line_no, (unsigned char)ch);
                goto fail;
            }
        }
        for (size_t i = eq + 1; i < line_len;) {
            const unsigned char *p = (const unsigned char *)line + i;
            size_t k = utf8_len(p, line_len - i);
            if (k == 0 || *p < 0x20 || *p == 0x7f) {
                snprintf(why, why_size, "config line %d: the value has %s byte 0x%02x", line_no,
                         k == 0 ? "a non-UTF-8" : "a control", *p);
                goto fail;
            }
            i += k;
        }
        line[eq] = '\0';
        line[line_len] = '\0';
        for (int j = 0; j < c->n; j++)
            if (!strcmp(c->keys[j], line)) {
                snprintf(why, why_size, "config key '%.64s' appears twice", line);
                goto fail;
            }
        c->keys[c->n] = line;
        c->values[c->n] = line + eq + 1;
        c->n++;
    }
    return 0;
fail:
    config_free(c);
    return -1;
}

/* "(a, b, c)" */
static const char *shape_str(int ndim, const int *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %d" : "%d", shape[i]);
    if (used < size) snprintf(buf + used, size - used, ")");
    return buf;
}

/* ---- saving ------------------------------------------------------------------ */

typedef struct planned {
    const nn_tensor *t;
    const char *name;
    size_t name_len;
    nn_weights_dtype dtype;
    uint64_t offset, bytes;
} planned;

typedef struct writer {
    const char *path, *tmp;
    FILE *fp;
    uint32_t crc;
    uint64_t pos;
} writer;

static int w_write(writer *w, const void *p, size_t n) {
    if (n == 0) return 0;
    errno = 0;
    if (fwrite(p, 1, n, w->fp) != n)
        return nn_fail("cannot save weights file %s: writing %s: %s", w->path, w->tmp,
                       strerror(errno ? errno : EIO));
    w->crc = nn_crc32(w->crc, p, n);
    w->pos += n;
    return 0;
}

static int w_pad_to(writer *w, uint64_t to) {
    static const unsigned char zeros[DATA_ALIGN];
    while (w->pos < to) {
        size_t k = to - w->pos < sizeof zeros ? (size_t)(to - w->pos) : sizeof zeros;
        if (w_write(w, zeros, k)) return -1;
    }
    return 0;
}

/* t's values on the host: t->data for a CPU tensor, else a malloc'd copy (*owned). */
static const nn_real *host_values(const nn_tensor *t, const char *path, const char *name,
                                  nn_real **owned) {
    *owned = NULL;
    if (!nn_backend_of(t->device)) {
        nn_fail_context("cannot save weights file %s: tensor '%s'", path, name);
        return NULL;
    }
    if (t->device == NN_CPU) return t->data;
    *owned = malloc(t->numel * sizeof(nn_real));
    if (!*owned) {
        nn_fail("cannot save weights file %s: tensor '%s': out of host memory", path, name);
        return NULL;
    }
    if (nn_tensor_download(t, *owned)) {
        free(*owned), *owned = NULL;
        nn_fail_context("cannot save weights file %s: tensor '%s'", path, name);
        return NULL;
    }
    return *owned;
}

/* Checks the arguments and fills plan[] (dtype per tensor, offsets). Creates nothing. */
static int plan_file(const char *path, const char *config_text, nn_tensor *const *tensors,
                     const char *const *names, int n, nn_weights_dtype dtype, planned *plan,
                     uint64_t *table_bytes, uint64_t *file_bytes) {
    char why[256];
    config cfg;
    if (config_parse(config_text, strlen(config_text), &cfg, why, sizeof why))
        return nn_fail("cannot save weights file %s: %s", path, why);
    config_free(&cfg);
    if (dtype != NN_WEIGHTS_F32 && dtype != NN_WEIGHTS_F16)
        return nn_fail("cannot save weights file %s: unknown dtype %d", path, (int)dtype);
    *table_bytes = 0;
    for (int i = 0; i < n; i++) {
        const nn_tensor *t = tensors[i];
        const char *name = names ? names[i] : t ? t->name : NULL;
        if (!t || !name) return nn_fail("cannot save weights file %s: tensor %d is NULL", path, i);
        size_t len = strlen(name);
        if (!valid_name(name, len))
            return nn_fail("cannot save weights file %s: tensor %d has the name '%.64s' (1..255 "
                           "printable ASCII characters without spaces expected)", path, i, name);
        for (int j = 0; j < i; j++)
            if (!strcmp(plan[j].name, name))
                return nn_fail("cannot save weights file %s: two tensors are named '%s'", path, name);
        if (t->ndim < 1 || t->ndim > NN_MAX_DIMS)
            return nn_fail("cannot save weights file %s: tensor '%s' has %d dimensions", path, name,
                           t->ndim);
        plan[i] = (planned){.t = t, .name = name, .name_len = len, .dtype = dtype};
        *table_bytes += round_up(ENTRY_FIXED + len, 8);
    }
    /* F16 keeps a tensor in F32 when a finite value would overflow binary16. */
    for (int i = 0; dtype == NN_WEIGHTS_F16 && i < n; i++) {
        nn_real *owned;
        const nn_real *v = host_values(plan[i].t, path, plan[i].name, &owned);
        if (!v) return -1;
        for (size_t k = 0; k < plan[i].t->numel; k++)
            if (isfinite(v[k]) && fabsf((float)v[k]) >= 65520.0f) {
                plan[i].dtype = NN_WEIGHTS_F32;
                break;
            }
        free(owned);
    }
    uint64_t table_offset = round_up(HEADER_BYTES + strlen(config_text), 8);
    uint64_t pos = round_up(table_offset + *table_bytes, DATA_ALIGN);
    for (int i = 0; i < n; i++) {
        plan[i].offset = round_up(pos, DATA_ALIGN);
        plan[i].bytes = (uint64_t)plan[i].t->numel * (plan[i].dtype == NN_WEIGHTS_F16 ? 2 : 4);
        pos = plan[i].offset + plan[i].bytes;
    }
    *file_bytes = pos + CRC_BYTES;
    return 0;
}

/* Writes the tensor data of p at w->pos == p->offset, converted in chunks. */
static int write_tensor_data(writer *w, const planned *p, unsigned char *buf) {
    nn_real *owned;
    const nn_real *v = host_values(p->t, w->path, p->name, &owned);
    if (!v) return -1;
    int rc = 0;
    size_t numel = p->t->numel;
    for (size_t start = 0; start < numel && !rc; start += CHUNK) {
        size_t k = numel - start < CHUNK ? numel - start : CHUNK;
        for (size_t j = 0; j < k; j++) {
            float x = (float)v[start + j];
            if (p->dtype == NN_WEIGHTS_F16) {
                uint16_t h = nn_float_to_half(x);
                buf[2 * j] = (unsigned char)h, buf[2 * j + 1] = (unsigned char)(h >> 8);
            } else {
                uint32_t u;
                memcpy(&u, &x, sizeof u);
                put_u32(buf + 4 * j, u);
            }
        }
        rc = w_write(w, buf, k * (p->dtype == NN_WEIGHTS_F16 ? 2 : 4));
    }
    free(owned);
    return rc;
}

int nn_weights_save(const char *path, const char *config_text, nn_tensor *const *tensors,
                    const char *const *names, int n, nn_weights_dtype dtype) {
    if (!path || !*path) return nn_fail("cannot save weights file: no path given");
    if (n < 0 || (n > 0 && !tensors))
        return nn_fail("cannot save weights file %s: %d tensors given", path, n);
    if (!config_text) config_text = "";
    planned *plan = calloc(n ? (size_t)n : 1, sizeof *plan);
    unsigned char *buf = malloc(CHUNK * 4);   /* >= header, >= largest table entry */
    size_t tmp_size = strlen(path) + 32;
    char *tmp = malloc(tmp_size);
    writer w = {.path = path, .tmp = tmp};
    int rc = -1;
    uint64_t table_bytes = 0, file_bytes = 0;
    if (!plan || !buf || !tmp) {
        nn_fail("cannot save weights file %s: out of host memory", path);
        goto done;
    }
    if (plan_file(path, config_text, tensors, names, n, dtype, plan, &table_bytes, &file_bytes))
        goto done;
    w.fp = nn_atomic_open(path, tmp, tmp_size);
    if (!w.fp) {
        nn_fail_context("cannot save weights file %s", path);
        goto done;
    }

    /* header */
    size_t config_bytes = strlen(config_text);
    memset(buf, 0, HEADER_BYTES);
    memcpy(buf, MAGIC, sizeof MAGIC);
    put_u32(buf + 8, NN_WEIGHTS_VERSION);
    put_u32(buf + 12, (uint32_t)n);
    put_u64(buf + 16, file_bytes);
    put_u64(buf + 24, config_bytes);
    put_u64(buf + 32, table_bytes);
    if (w_write(&w, buf, HEADER_BYTES) || w_write(&w, config_text, config_bytes) ||
        w_pad_to(&w, round_up(w.pos, 8)))
        goto fail;

    /* tensor table */
    for (int i = 0; i < n; i++) {
        const planned *p = &plan[i];
        size_t entry = (size_t)round_up(ENTRY_FIXED + p->name_len, 8);
        memset(buf, 0, entry);
        put_u64(buf, p->offset);
        put_u64(buf + 8, p->bytes);
        put_u32(buf + 16, (uint32_t)p->dtype);
        put_u32(buf + 20, (uint32_t)p->t->ndim);
        for (int d = 0; d < p->t->ndim; d++) put_u32(buf + 24 + 4 * d, (uint32_t)p->t->shape[d]);
        put_u32(buf + 56, (uint32_t)p->name_len);
        memcpy(buf + ENTRY_FIXED, p->name, p->name_len);
        if (w_write(&w, buf, entry)) goto fail;
    }

    /* tensor data */
    for (int i = 0; i < n; i++)
        if (w_pad_to(&w, plan[i].offset) || write_tensor_data(&w, &plan[i], buf)) goto fail;

    /* trailer: CRC-32 of every byte before it */
    if (w.pos != file_bytes - CRC_BYTES) {
        nn_fail("cannot save weights file %s: internal error: %llu bytes written, %llu planned",
                path, (unsigned long long)w.pos, (unsigned long long)(file_bytes - CRC_BYTES));
        goto fail;
    }
    unsigned char crc[CRC_BYTES];
    put_u32(crc, w.crc);
    if (w_write(&w, crc, sizeof crc)) goto fail;

    FILE *fp = w.fp;
    w.fp = NULL;
    if (nn_atomic_commit(fp, tmp, path, "cannot save weights file")) goto done;
    rc = 0;
    goto done;
fail:
    nn_atomic_abandon(w.fp, tmp);
done:
    free(plan), free(buf), free(tmp);
    return rc;
}

/* ---- loading ----------------------------------------------------------------- */

struct nn_weights_file {
    char *path;
    unsigned char *bytes;   /* the whole file */
    size_t size;
    char *config_text;      /* NUL-terminated copy */
    config cfg;
    int n;
    nn_weights_info *info;
    uint64_t *offset;       /* of each tensor's data */
};

/* Parses and checks f->bytes; -1 + nn_fail naming the file. */
static int parse_file(nn_weights_file *f) {
    const unsigned char *b = f->bytes;
    const char *path = f->path;
    size_t size = f->size;
    if (size < sizeof MAGIC ? memcmp(b, MAGIC, size) != 0 : memcmp(b, MAGIC, sizeof MAGIC) != 0)
        return nn_fail("%s is not a deep3d weights file (wrong magic bytes)", path);
    if (size < HEADER_BYTES) {
        if (size >= 12 && get_u32(b + 8) > NN_WEIGHTS_VERSION) goto newer;
        return nn_fail("weights file %s is truncated: %zu bytes, the header alone is %d", path, size,
                       HEADER_BYTES);
    }
    uint32_t version = get_u32(b + 8);
    if (version > NN_WEIGHTS_VERSION) goto newer;
    if (version == 0) return nn_fail("weights file %s is corrupted: format version 0", path);
    uint64_t file_bytes = get_u64(b + 16);
    if (size < file_bytes)
        return nn_fail("weights file %s is truncated: %zu of %llu bytes", path, size,
                       (unsigned long long)file_bytes);
    if (size > file_bytes)
        return nn_fail("weights file %s is corrupted: %zu bytes, its header says %llu", path, size,
                       (unsigned long long)file_bytes);
    if (file_bytes < HEADER_BYTES + CRC_BYTES)
        return nn_fail("weights file %s is corrupted: its header gives a size of %llu bytes", path,
                       (unsigned long long)file_bytes);
    uint64_t body = file_bytes - CRC_BYTES;
    uint32_t stored = get_u32(b + body), computed = nn_crc32(0, b, (size_t)body);
    if (stored != computed)
        return nn_fail("weights file %s is corrupted: checksum mismatch (stored 0x%08x, computed "
                       "0x%08x)", path, stored, computed);

    /* From here on the bytes are what a writer wrote: errors mean a faulty writer. */
    uint32_t n = get_u32(b + 12);
    uint64_t config_bytes = get_u64(b + 24), table_bytes = get_u64(b + 32);
    if (config_bytes > body || table_bytes > body)
        return nn_fail("weights file %s is corrupted: configuration or table larger than the file", path);
    uint64_t table_offset = round_up(HEADER_BYTES + config_bytes, 8);
    uint64_t table_end = table_offset + table_bytes;
    if (table_end > body || n > INT_MAX || (uint64_t)n * 64 > table_bytes)
        return nn_fail("weights file %s is corrupted: the table does not fit (%u tensors, %llu bytes)",
                       path, n, (unsigned long long)table_bytes);
    if (memchr(b + HEADER_BYTES, '\0', (size_t)config_bytes))
        return nn_fail("weights file %s is corrupted: the configuration holds a NUL byte", path);
    f->config_text = malloc((size_t)config_bytes + 1);
    if (!f->config_text) return nn_fail("weights file %s: out of host memory", path);
    memcpy(f->config_text, b + HEADER_BYTES, (size_t)config_bytes);
    f->config_text[config_bytes] = '\0';
    char why[256];
    if (config_parse(f->config_text, (size_t)config_bytes, &f->cfg, why, sizeof why))
        return nn_fail("weights file %s is corrupted: %s", path, why);

    f->info = calloc(n ? n : 1, sizeof *f->info);
    f->offset = calloc(n ? n : 1, sizeof *f->offset);
    if (!f->info || !f->offset) return nn_fail("weights file %s: out of host memory", path);
    uint64_t pos = table_offset, data_end = table_end;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = b + pos;
        if (pos + ENTRY_FIXED > table_end)
            return nn_fail("weights file %s is corrupted: table entry %u is cut off", path, i);
        uint32_t name_len = get_u32(e + 56);
        uint64_t entry = round_up(ENTRY_FIXED + (uint64_t)name_len, 8);
        if (name_len > MAX_NAME || pos + entry > table_end ||
            !valid_name((const char *)e + ENTRY_FIXED, name_len))
            return nn_fail("weights file %s is corrupted: table entry %u has a bad name", path, i);
        char *name = strndup((const char *)e + ENTRY_FIXED, name_len);
        if (!name) return nn_fail("weights file %s: out of host memory", path);
        nn_weights_info *t = &f->info[i];
        t->name = name;
        f->n = (int)i + 1;   /* so that nn_weights_close frees the names so far */
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->info[j].name, name))
                return nn_fail("weights file %s is corrupted: two tensors are named '%s'", path, name);
        uint64_t offset = get_u64(e), bytes = get_u64(e + 8);
        uint32_t dtype = get_u32(e + 16), ndim = get_u32(e + 20);
        if (dtype != NN_WEIGHTS_F32 && dtype != NN_WEIGHTS_F16)
            return nn_fail("weights file %s is corrupted: tensor '%s' has dtype code %u", path, name,
                           dtype);
        if (ndim < 1 || ndim > FILE_MAX_DIMS)
            return nn_fail("weights file %s is corrupted: tensor '%s' has %u dimensions", path, name,
                           ndim);
        if (ndim > NN_MAX_DIMS)
            return nn_fail("weights file %s: tensor '%s' has %u dimensions, this deep3d supports "
                           "at most %d", path, name, ndim, NN_MAX_DIMS);
        uint64_t numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            uint32_t s = get_u32(e + 24 + 4 * d);
            if (s < 1 || s > INT_MAX || s > body / numel || (numel *= s) > body)
                return nn_fail("weights file %s is corrupted: tensor '%s' has a bad shape", path, name);
            t->shape[d] = (int)s;
        }
        t->dtype = (nn_weights_dtype)dtype;
        t->ndim = (int)ndim;
        t->numel = (size_t)numel;
        if (bytes != numel * (dtype == NN_WEIGHTS_F16 ? 2 : 4) || offset % DATA_ALIGN ||
            offset < data_end || offset > body || bytes > body - offset)
            return nn_fail("weights file %s is corrupted: tensor '%s' has bad data bounds (offset "
                           "%llu, %llu bytes)", path, name, (unsigned long long)offset,
                           (unsigned long long)bytes);
        f->offset[i] = offset;
        data_end = offset + bytes;
        pos += entry;
    }
    if (pos != table_end)
        return nn_fail("weights file %s is corrupted: %llu unused bytes in the table", path,
                       (unsigned long long)(table_end - pos));
    return 0;
newer:
    return nn_fail("weights file %s has format version %u; this deep3d reads versions up to %d "
                   "(a newer deep3d wrote it)", path, get_u32(b + 8), NN_WEIGHTS_VERSION);
}

nn_weights_file *nn_weights_open(const char *path) {
    if (!path) {
        nn_fail("cannot open weights file: no path given");
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nn_fail("cannot open weights file %s: %s", path, strerror(errno));
        return NULL;
    }
    nn_weights_file *f = calloc(1, sizeof *f);
    struct stat st;
    if (!f || !(f->path = strdup(path))) {
        nn_fail("cannot open weights file %s: out of host memory", path);
        goto fail;
    }
    if (fstat(fileno(fp), &st)) {
        nn_fail("cannot open weights file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        nn_fail("cannot open weights file %s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    f->bytes = malloc(f->size ? f->size : 1);
    if (!f->bytes) {
        nn_fail("cannot open weights file %s: out of host memory for %zu bytes", path, f->size);
        goto fail;
    }
    errno = 0;
    size_t got = fread(f->bytes, 1, f->size, fp);
    if (got != f->size && ferror(fp)) {
        nn_fail("cannot read weights file %s: %s", path, strerror(errno ? errno : EIO));
        goto fail;
    }
    f->size = got;   /* a file that shrank since fstat reads as truncated */
    fclose(fp);
    fp = NULL;
    if (parse_file(f)) goto fail;
    return f;
fail:
    if (fp) fclose(fp);
    nn_weights_close(f);
    return NULL;
}

void nn_weights_close(nn_weights_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free((char *)f->info[i].name);
    free(f->info), free(f->offset), free(f->config_text), free(f->bytes), free(f->path);
    config_free(&f->cfg);
    free(f);
}

const char *nn_weights_path(const nn_weights_file *f) { return f->path; }

const char *nn_weights_config(const nn_weights_file *f) { return f->config_text; }

const char *nn_weights_config_get(const nn_weights_file *f, const char *key) {
    for (int i = 0; i < f->cfg.n; i++)
        if (!strcmp(f->cfg.keys[i], key)) return f->cfg.values[i];
    return NULL;
}

int nn_weights_config_str(const nn_weights_file *f, const char *key, const char **out) {
    const char *v = nn_weights_config_get(f, key);
    if (!v) return nn_fail("weights file %s: config has no key '%s'", f->path, key);
    *out = v;
    return 0;
}

int nn_weights_config_int(const nn_weights_file *f, const char *key, long *out) {
    const char *v = NULL;
    if (nn_weights_config_str(f, key, &v)) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno)
        return nn_fail("weights file %s: config key '%s' is '%.64s', not an integer", f->path, key, v);
    *out = x;
    return 0;
}

int nn_weights_config_double(const nn_weights_file *f, const char *key, double *out) {
    const char *v = NULL;
    if (nn_weights_config_str(f, key, &v)) return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || !isfinite(x) || (errno == ERANGE && fabs(x) > 1))
        return nn_fail("weights file %s: config key '%s' is '%.64s', not a finite number", f->path,
                       key, v);
    *out = x;
    return 0;
}

int nn_weights_count(const nn_weights_file *f) { return f->n; }

const nn_weights_info *nn_weights_tensor(const nn_weights_file *f, int i) {
    return i >= 0 && i < f->n ? &f->info[i] : NULL;
}

static int find(const nn_weights_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->info[i].name, name)) return i;
    return -1;
}

int nn_weights_has(const nn_weights_file *f, const char *name) { return find(f, name) >= 0; }

int nn_weights_read(const nn_weights_file *f, const char *name, nn_tensor *dst) {
    int i = find(f, name);
    if (i < 0) return nn_fail("weights file %s has no tensor '%s'", f->path, name);
    const nn_weights_info *t = &f->info[i];
    int same = t->ndim == dst->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == dst->shape[d];
    if (!same) {
        char have[96], want[96];
        return nn_fail("weights file %s: tensor '%s' has shape %s, the model expects %s", f->path,
                       name, shape_str(t->ndim, t->shape, have, sizeof have),
                       nn_shape_str(dst, want, sizeof want));
    }
    if (!nn_backend_of(dst->device)) return nn_fail_context("weights file %s: tensor '%s'", f->path, name);
    nn_real *host = dst->device == NN_CPU ? dst->data : malloc(t->numel * sizeof(nn_real));
    if (!host) return nn_fail("weights file %s: tensor '%s': out of host memory", f->path, name);
    const unsigned char *p = f->bytes + f->offset[i];
    if (t->dtype == NN_WEIGHTS_F16)
        for (size_t k = 0; k < t->numel; k++)
            host[k] = (nn_real)nn_half_to_float((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
    else
        for (size_t k = 0; k < t->numel; k++) {
            uint32_t u = get_u32(p + 4 * k);
            float x;
            memcpy(&x, &u, sizeof x);
            host[k] = (nn_real)x;
        }
    int rc = 0;
    if (host != dst->data) {
        rc = nn_tensor_upload(dst, host);
        free(host);
        if (rc) nn_fail_context("weights file %s: tensor '%s'", f->path, name);
    }
    return rc;
}
