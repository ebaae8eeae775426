/* The weights file (nn/weights.h, weights/FORMAT.md): CRC-32 and binary16 against plain
 * references written here, round trips, the documented byte layout, and every error
 * class (truncated, corrupted, foreign, newer, missing, mismatched, failed saves). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../nn/weights.h"
#include "testutil.h"

/* ---- plain references ----------------------------------------------------------- */

/* CRC-32 bit by bit: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF
 * (CRC RevEng catalogue, CRC-32/ISO-HDLC; the zlib/PNG CRC). */
static uint32_t ref_crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

/* binary16 by its definition (IEEE 754-2008 sec. 3.4): (-1)^s 2^(e-15) (1 + m/1024),
 * subnormal (-1)^s 2^-14 (m/1024), e = 31: inf or NaN. */
static double ref_half_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* Value of the non-negative pattern p in 0..0x7c00, treating 0x7c00 as 65536, the next
 * value of an unbounded exponent (IEEE 754 sec. 4.3: overflow is judged after rounding). */
static double ref_grid(uint16_t p) { return p == 0x7c00 ? 65536.0 : ref_half_value(p); }

/* Nearest binary16 of x, ties to the even pattern, by searching the ordered grid. */
static uint16_t ref_float_to_half(float x) {
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (isnan(x)) return sign | 0x7e00;   /* only "some NaN" is compared */
    if (a >= 65536.0) return sign | 0x7c00;
    uint16_t lo = 0, hi = 0x7c00;         /* grid(lo) <= a < grid(hi) */
    while (hi - lo > 1) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        if (ref_grid(mid) <= a) lo = mid;
        else hi = mid;
    }
    double midpoint = (ref_grid(lo) + ref_grid(hi)) / 2;   /* exact: 12 significant bits */
    uint16_t r = a < midpoint ? lo : a > midpoint ? hi : (lo % 2 == 0 ? lo : hi);
    return sign | r;
}

static int half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* ---- files ---------------------------------------------------------------------- */

static char *make_dir(void) {
    char *dir = malloc(64);
    tu_tmpdir(dir, "deep3d_weights");
    return dir;
}

static char *join(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static void remove_dir(const char *dir) { tu_rmtree(dir); }

/* Names in dir, ", "-separated (for messages), and their count. */
static int list_dir(const char *dir, char *names, size_t size) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    int count = 0;
    names[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        count++;
        strncat(names, e->d_name, size - strlen(names) - 3);
        strcat(names, ", ");
    }
    closedir(d);
    return count;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(*n ? *n : 1);
    cr_assert_eq(fread(b, 1, *n, fp), *n);
    fclose(fp);
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "cannot create %s", path);
    cr_assert_eq(fwrite(b, 1, n, fp), n);
    cr_assert_eq(fclose(fp), 0);
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Asserts that opening `path` fails with a message naming it and containing `what`. */
static void assert_open_fails(const char *path, const char *what) {
    nn_clear_error();
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_null(f, "opening %s should fail with '%s'", path, what);
    const char *m = nn_last_error();
    cr_assert(strstr(m, path) && strstr(m, what), "message '%s' should name %s and say '%s'", m,
              path, what);
    cr_assert_null(strchr(m, '\n'), "message is more than one line: '%s'", m);
}

/* A small model-like file: config, a 4-D conv weight, a 1-D bias, a 5-D tensor. */
static const char *CONFIG = "variant=released\nwidth=384\nheight=160\ndisparities=33\ndmin=-15\n";

static void save_sample(const char *path, nn_weights_dtype dtype) {
    nn_tensor *w = tu_uniform4(4, 3, 3, 3, -1, 1, 11), *b = tu_uniform4(4, 0, 0, 0, -1, 1, 12);
    int shape5[5] = {2, 1, 3, 2, 2};
    nn_tensor *v = tu_uniform(5, shape5, -3, 3, 13);
    nn_tensor *ts[3] = {w, b, v};
    const char *names[3] = {"conv1_1.weight", "conv1_1.bias", "extra.five_d"};
    cr_assert_eq(nn_weights_save(path, CONFIG, ts, names, 3, dtype), 0, "%s", nn_last_error());
    nn_tensor_unref(w), nn_tensor_unref(b), nn_tensor_unref(v);
}

/* ---- CRC-32 and binary16 ------------------------------------------------------- */

Test(weights, crc32_matches_check_value_and_bitwise_reference) {
    /* Check value of CRC-32/ISO-HDLC (zlib crc32, PNG) for the ASCII "123456789":
     * 0xCBF43926 (CRC RevEng catalogue of parametrised CRC algorithms; Williams,
     * "A painless guide to CRC error detection algorithms", 1993). */
    cr_assert_eq(nn_crc32(0, "123456789", 9), 0xCBF43926u, "got 0x%08x", nn_crc32(0, "123456789", 9));
    cr_assert_eq(nn_crc32(0, "", 0), 0u);
    unsigned char buf[1031];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(nn_hash_uniform(7, i) * 256);
    for (size_t off = 0; off < 9; off++)   /* every alignment and tail length of the 8-byte loop */
        for (size_t n = 0; n + off <= sizeof buf; n += 1 + n / 3) {
            uint32_t want = ref_crc32(buf + off, n);
            cr_assert_eq(nn_crc32(0, buf + off, n), want, "offset %zu length %zu", off, n);
            size_t k = n / 3;   /* continuing a CRC equals the CRC of the concatenation */
            cr_assert_eq(nn_crc32(nn_crc32(0, buf + off, k), buf + off + k, n - k), want);
        }
}

Test(weights, half_known_values) {
    /* Examples of IEEE 754 binary16 (e.g. the table of the Wikipedia article
     * "Half-precision floating-point format"), each exactly representable. */
    const struct { uint16_t h; double v; } known[] = {
        {0x0000, 0.0},           {0x0001, 0x1p-24},          /* smallest subnormal */
        {0x03ff, 1023 * 0x1p-24}, /* largest subnormal */     {0x0400, 0x1p-14}, /* smallest normal */
        {0x3555, 0.333251953125}, {0x3bff, 0.99951171875},    {0x3c00, 1.0},
        {0x3c01, 1.0009765625},   {0x7bff, 65504.0}, /* largest normal */
        {0xc000, -2.0},           {0x7c00, INFINITY},          {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        cr_assert_eq((double)nn_half_to_float(known[i].h), known[i].v, "0x%04x", known[i].h);
        cr_assert_eq(nn_float_to_half((float)known[i].v), known[i].h, "%g -> 0x%04x, want 0x%04x",
                     known[i].v, nn_float_to_half((float)known[i].v), known[i].h);
    }
    cr_assert_eq(nn_float_to_half(-0.0f), 0x8000);
    cr_assert(signbit(nn_half_to_float(0x8000)) && nn_half_to_float(0x8000) == 0);
    cr_assert_eq(nn_float_to_half(1.0f / 3.0f), 0x3555);   /* nearest half to 1/3 */
    cr_assert_eq(nn_float_to_half(65519.0f), 0x7bff);       /* below the midpoint to 2^16 */
    cr_assert_eq(nn_float_to_half(65520.0f), 0x7c00);       /* the tie goes to the even inf */
    cr_assert_eq(nn_float_to_half(0x1p-25f), 0x0000);       /* tie between 0 and 2^-24 */
    cr_assert_eq(nn_float_to_half(0x1.0p-25f * 1.5f), 0x0001);
    cr_assert(half_is_nan(nn_float_to_half(NAN)) && isnan(nn_half_to_float(0x7e00)));
    cr_assert(half_is_nan(nn_float_to_half(-NAN)) && (nn_float_to_half(-NAN) & 0x8000));
}

Test(weights, half_every_pattern_decodes_and_round_trips) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = nn_half_to_float((uint16_t)h);
        double want = ref_half_value((uint16_t)h);
        if (half_is_nan((uint16_t)h)) {
            cr_assert(isnan(f), "0x%04x", h);
            /* quiet NaNs come back as they were; signalling ones come back quiet */
            cr_assert_eq(nn_float_to_half(f), h | 0x200, "0x%04x", h);
            continue;
        }
        cr_assert_eq((double)f, want, "0x%04x: %g, want %g", h, (double)f, want);
        cr_assert_eq(!!signbit(f), h >> 15, "0x%04x sign", h);
        cr_assert_eq(nn_float_to_half(f), h, "0x%04x -> %g -> 0x%04x", h, (double)f, nn_float_to_half(f));
    }
}

Test(weights, half_rounding_matches_reference_at_every_midpoint_and_random_floats) {
    /* Every midpoint between neighbouring halves (the ties), and one float either side. */
    for (uint16_t p = 0; p < 0x7c00; p++) {
        float mid = (float)((ref_grid(p) + ref_grid(p + 1)) / 2);   /* exact in float */
        float xs[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 3; k++)
            for (int s = 0; s < 2; s++) {
                float x = s ? -xs[k] : xs[k];
                cr_assert_eq(nn_float_to_half(x), ref_float_to_half(x), "%a -> 0x%04x, want 0x%04x",
                             (double)x, nn_float_to_half(x), ref_float_to_half(x));
            }
    }
    /* Random bit patterns: every exponent, subnormal floats, inf, NaN. */
    for (uint64_t i = 0; i < 300000; i++) {
        uint32_t u = (uint32_t)(nn_hash_uniform(99, i) * 4294967296.0);
        float x;
        memcpy(&x, &u, sizeof x);
        uint16_t got = nn_float_to_half(x), want = ref_float_to_half(x);
        if (isnan(x)) cr_assert(half_is_nan(got) && (got & 0x8000) == (want & 0x8000), "%08x", u);
        else cr_assert_eq(got, want, "%a (0x%08x) -> 0x%04x, want 0x%04x", (double)x, u, got, want);
    }
}

/* ---- round trips ---------------------------------------------------------------- */

Test(weights, round_trip_f32_is_bit_exact_with_config_and_checkpoint_tensors) {
    char *dir = make_dir(), *path = join(dir, "ckpt.d3w");
    nn_tensor *w = tu_uniform4(8, 3, 3, 3, -1, 1, 1), *b = tu_uniform4(8, 0, 0, 0, -1, 1, 2);
    nn_tensor *vw = tu_uniform4(8, 3, 3, 3, -1e-3, 1e-3, 3), *vb = tu_uniform4(8, 0, 0, 0, -1, 1, 4);
    int shape5[5] = {1, 2, 1, 3, 2};
    nn_tensor *five = tu_uniform(5, shape5, -1e6, 1e6, 5);
    /* values float32 holds but float16 does not: they must come back bit for bit */
    b->data[0] = -0.0f, b->data[1] = INFINITY, b->data[2] = 1e-40f, b->data[3] = 3.0e38f;
    b->data[4] = (nn_real)(1.0 / 3.0);
    snprintf(w->name, sizeof w->name, "conv1_1.weight");
    snprintf(b->name, sizeof b->name, "conv1_1.bias");
    snprintf(vw->name, sizeof vw->name, "optim.velocity.conv1_1.weight");
    snprintf(vb->name, sizeof vb->name, "optim.velocity.conv1_1.bias");
    snprintf(five->name, sizeof five->name, "five_d");
    nn_tensor *ts[5] = {w, b, vw, vb, five};
    const char *cfg = "variant=released\nwidth=384\nstep=120000\nseed=42\noptimizer=sgd\nlr=0.002\n";
    cr_assert_eq(nn_weights_save(path, cfg, ts, NULL, 5, NN_WEIGHTS_F32), 0, "%s", nn_last_error());

    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    cr_assert_str_eq(nn_weights_config(f), cfg);
    cr_assert_str_eq(nn_weights_path(f), path);
    cr_assert_eq(nn_weights_count(f), 5);
    for (int i = 0; i < 5; i++) {
        const nn_weights_info *info = nn_weights_tensor(f, i);
        cr_assert_str_eq(info->name, ts[i]->name);
        cr_assert_eq(info->dtype, NN_WEIGHTS_F32);
        cr_assert_eq(info->ndim, ts[i]->ndim);
        cr_assert_arr_eq(info->shape, ts[i]->shape, (size_t)ts[i]->ndim * sizeof(int));
        cr_assert(nn_weights_has(f, ts[i]->name));
        nn_tensor *r = nn_tensor_new_like(ts[i]);
        cr_assert_eq(nn_weights_read(f, ts[i]->name, r), 0, "%s", nn_last_error());
        cr_assert_arr_eq(r->data, ts[i]->data, r->numel * sizeof(nn_real), "tensor %s", info->name);
        nn_tensor_unref(r);
    }
    cr_assert_null(nn_weights_tensor(f, 5));
    cr_assert_not(nn_weights_has(f, "optim.m.conv1_1.weight"));
    nn_weights_close(f);
    for (int i = 0; i < 5; i++) nn_tensor_unref(ts[i]);
    cr_assert_eq(nn_tensor_live_count(), 0);
    remove_dir(dir);
    free(dir), free(path);
}

Test(weights, round_trip_f16_within_half_precision_and_equal_to_reference_rounding) {
    char *dir = make_dir(), *path = join(dir, "model.d3w"), *path32 = join(dir, "model32.d3w");
    /* values spread over the normal binary16 range, both signs, and known exact ones */
    nn_tensor *a = tu_uniform4(64, 7, 3, 3, 0, 1, 21);
    for (size_t i = 0; i < a->numel; i++) {
        double mag = pow(2.0, -14.0 + 29.9 * nn_hash_uniform(22, i));   /* 2^-14 .. 2^15.9 */
        a->data[i] = (nn_real)(nn_hash_uniform(23, i) < 0.5 ? -mag : mag);
    }
    const nn_real exact[] = {0, 1, -2, 0.333251953125, 65504, 0x1p-14, 0x1p-24, 1023 * 0x1p-24, 0.5};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) a->data[i] = exact[i];
    nn_tensor *big = tu_uniform4(3, 5, 0, 0, -1, 1, 24);
    big->data[7] = 1e5f;   /* beyond binary16: this tensor must stay float32 */
    nn_tensor *ts[2] = {a, big};
    const char *names[2] = {"fc6.weight", "bn.running_var"};
    cr_assert_eq(nn_weights_save(path, "variant=released\n", ts, names, 2, NN_WEIGHTS_F16), 0, "%s",
                 nn_last_error());
    cr_assert_eq(nn_weights_save(path32, "variant=released\n", ts, names, 2, NN_WEIGHTS_F32), 0, "%s",
                 nn_last_error());
    struct stat s16, s32;
    cr_assert_eq(stat(path, &s16), 0);
    cr_assert_eq(stat(path32, &s32), 0);
    cr_assert_lt(s16.st_size, s32.st_size - (long)a->numel * 2 + 64, "f16 file %ld bytes, f32 %ld",
                 (long)s16.st_size, (long)s32.st_size);

    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    cr_assert_eq(nn_weights_tensor(f, 0)->dtype, NN_WEIGHTS_F16);
    cr_assert_eq(nn_weights_tensor(f, 1)->dtype, NN_WEIGHTS_F32, "out-of-range tensor kept in f32");
    nn_tensor *ra = nn_tensor_new_like(a), *rbig = nn_tensor_new_like(big);
    cr_assert_eq(nn_weights_read(f, "fc6.weight", ra), 0, "%s", nn_last_error());
    cr_assert_eq(nn_weights_read(f, "bn.running_var", rbig), 0, "%s", nn_last_error());
    for (size_t i = 0; i < a->numel; i++) {
        double x = a->data[i], y = ra->data[i];
        double want = ref_half_value(ref_float_to_half((float)x));
        cr_assert_eq(y, want, "element %zu: %a read back as %a, reference rounding %a", i, x, y, want);
        cr_assert_leq(fabs(y - x), 0x1p-11 * fabs(x), "element %zu: %g -> %g", i, x, y);
        if (i < sizeof exact / sizeof exact[0]) cr_assert_eq(y, x, "exact value %g", x);
    }
    cr_assert_arr_eq(rbig->data, big->data, big->numel * sizeof(nn_real));
    nn_weights_close(f);
    nn_tensor_unref(a), nn_tensor_unref(big), nn_tensor_unref(ra), nn_tensor_unref(rbig);
    cr_assert_eq(nn_tensor_live_count(), 0);
    remove_dir(dir);
    free(dir), free(path), free(path32);
}

Test(weights, file_layout_matches_format_md) {
    /* Parses the file by the byte layout of weights/FORMAT.md, independently of the loader. */
    char *dir = make_dir(), *path = join(dir, "layout.d3w");
    nn_tensor *w = tu_uniform4(2, 3, 0, 0, -1, 1, 31), *big = tu_uniform4(3, 0, 0, 0, -1, 1, 32);
    big->data[1] = 70000;
    nn_tensor *ts[2] = {w, big};
    const char *names[2] = {"w", "a.longer_name"};
    cr_assert_eq(nn_weights_save(path, "k=v\n", ts, names, 2, NN_WEIGHTS_F16), 0, "%s", nn_last_error());
    size_t n;
    unsigned char *b = read_all(path, &n);
    const unsigned char magic[8] = {0x89, 'D', '3', 'W', '\r', '\n', 0x1a, '\n'};
    cr_assert_arr_eq(b, magic, 8);
    cr_assert_eq(le32(b + 8), 1, "version");
    cr_assert_eq(le32(b + 12), 2, "tensor count");
    cr_assert_eq(le64(b + 16), n, "file size");
    cr_assert_eq(le64(b + 24), 4, "config bytes");
    for (int i = 40; i < 64; i++) cr_assert_eq(b[i], 0, "reserved header byte %d", i);
    cr_assert_arr_eq(b + 64, "k=v\n", 4);
    size_t table = 72;   /* round_up(64 + 4, 8) */
    cr_assert_eq(le64(b + 32), 64 + 80, "table bytes: entries of 60+1 -> 64 and 60+13 -> 80");
    size_t e0 = table, e1 = table + 64;
    cr_assert_eq(le32(b + e0 + 56), 1);
    cr_assert_arr_eq(b + e0 + 60, "w", 1);
    cr_assert_eq(le32(b + e1 + 56), 13);
    cr_assert_arr_eq(b + e1 + 60, "a.longer_name", 13);
    cr_assert_eq(le32(b + e0 + 16), 1, "w stored f16");
    cr_assert_eq(le32(b + e1 + 16), 0, "the tensor holding 70000 stored f32");
    cr_assert_eq(le32(b + e0 + 20), 2);
    cr_assert_eq(le32(b + e0 + 24), 2);
    cr_assert_eq(le32(b + e0 + 28), 3);
    for (int d = 2; d < 8; d++) cr_assert_eq(le32(b + e0 + 24 + 4 * d), 0);
    uint64_t off0 = le64(b + e0), off1 = le64(b + e1);
    cr_assert_eq(off0, 256, "first data at round_up(72 + 144, 64)");
    cr_assert_eq(le64(b + e0 + 8), 6 * 2);
    cr_assert_eq(off1, 320, "second data at the next multiple of 64");
    cr_assert_eq(le64(b + e1 + 8), 3 * 4);
    for (int i = 0; i < 6; i++) {
        uint16_t h = (uint16_t)(b[off0 + 2 * i] | b[off0 + 2 * i + 1] << 8);
        cr_assert_eq(h, ref_float_to_half(w->data[i]));
    }
    for (int i = 0; i < 3; i++) {
        uint32_t u = le32(b + off1 + 4 * i);
        float x;
        memcpy(&x, &u, 4);
        cr_assert_eq(x, big->data[i]);
    }
    cr_assert_eq(n, off1 + 12 + 4, "the CRC follows the last tensor's data");
    cr_assert_eq(le32(b + n - 4), ref_crc32(b, n - 4), "CRC-32 of everything before it");
    free(b);
    nn_tensor_unref(w), nn_tensor_unref(big);
    remove_dir(dir);
    free(dir), free(path);
}

Test(weights, config_helpers) {
    char *dir = make_dir(), *path = join(dir, "cfg.d3w");
    const char *cfg = "variant=released\nwidth=384\n\ndmin=-15\nlr=2e-3\nseed=18446744073709551615\n"
                      "title=Caf\xc3\xa9 3D\nempty=\nbad_int=12x\nbad_double=1e999";
    cr_assert_eq(nn_weights_save(path, cfg, NULL, NULL, 0, NN_WEIGHTS_F32), 0, "%s", nn_last_error());
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    cr_assert_str_eq(nn_weights_config(f), cfg);
    cr_assert_eq(nn_weights_count(f), 0);
    const char *s;
    long i;
    double d;
    cr_assert_eq(nn_weights_config_str(f, "variant", &s), 0);
    cr_assert_str_eq(s, "released");
    cr_assert_str_eq(nn_weights_config_get(f, "title"), "Caf\xc3\xa9 3D");
    cr_assert_str_eq(nn_weights_config_get(f, "empty"), "");
    cr_assert_null(nn_weights_config_get(f, "height"));
    cr_assert_eq(nn_weights_config_int(f, "width", &i), 0);
    cr_assert_eq(i, 384);
    cr_assert_eq(nn_weights_config_int(f, "dmin", &i), 0);
    cr_assert_eq(i, -15);
    cr_assert_eq(nn_weights_config_double(f, "lr", &d), 0);
    cr_assert_eq(d, 2e-3);
    cr_assert_eq(nn_weights_config_str(f, "seed", &s), 0);
    cr_assert_eq(strtoull(s, NULL, 10), 18446744073709551615ull);
    cr_assert_eq(nn_weights_config_int(f, "height", &i), -1);
    char want[512];
    snprintf(want, sizeof want, "weights file %s: config has no key 'height'", path);
    cr_assert_str_eq(nn_last_error(), want);
    cr_assert_eq(nn_weights_config_int(f, "bad_int", &i), -1);
    snprintf(want, sizeof want, "weights file %s: config key 'bad_int' is '12x', not an integer", path);
    cr_assert_str_eq(nn_last_error(), want);
    cr_assert_eq(nn_weights_config_int(f, "seed", &i), -1, "2^64-1 overflows long");
    cr_assert_eq(nn_weights_config_int(f, "empty", &i), -1);
    cr_assert_eq(nn_weights_config_double(f, "bad_double", &d), -1);
    cr_assert(strstr(nn_last_error(), "not a finite number"), "%s", nn_last_error());
    nn_weights_close(f);
    remove_dir(dir);
    free(dir), free(path);
}

Test(weights, save_rejects_bad_names_and_config_and_creates_nothing) {
    char *dir = make_dir(), *path = join(dir, "m.d3w");
    nn_tensor *a = tu_uniform4(2, 0, 0, 0, 0, 1, 1), *b = tu_uniform4(2, 0, 0, 0, 0, 1, 2);
    nn_tensor *ts[2] = {a, b};
    const struct { const char *config, *n0, *n1, *what; } cases[] = {
        {"a=1\n", "x", "x", "two tensors are named 'x'"},
        {"a=1\n", "has space", "y", "name 'has space'"},
        {"a=1\n", "", "y", "name ''"},
        {"width 384\n", "x", "y", "config line 1 ('width 384') is not key=value"},
        {"a=1\na=2\n", "x", "y", "config key 'a' appears twice"},
        {"=1\n", "x", "y", "empty key"},
        {"a b=1\n", "x", "y", "key characters"},
        {"a=\x01\n", "x", "y", "control byte 0x01"},
        {"a=\xff\n", "x", "y", "non-UTF-8 byte 0xff"},
        {"a=\xed\xa0\x80\n", "x", "y", "non-UTF-8"},   /* an encoded UTF-16 surrogate */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *names[2] = {cases[i].n0, cases[i].n1};
        cr_assert_eq(nn_weights_save(path, cases[i].config, ts, names, 2, NN_WEIGHTS_F32), -1,
                     "case %zu", i);
        cr_assert(strstr(nn_last_error(), path) && strstr(nn_last_error(), cases[i].what),
                  "case %zu: '%s' should name the file and say '%s'", i, nn_last_error(), cases[i].what);
        char listing[512];
        cr_assert_eq(list_dir(dir, listing, sizeof listing), 0, "left behind: %s", listing);
    }
    nn_tensor_unref(a), nn_tensor_unref(b);
    remove_dir(dir);
    free(dir), free(path);
}

/* ---- broken files ----------------------------------------------------------------- */

Test(weights, truncated_file_is_reported_at_every_length) {
    char *dir = make_dir(), *path = join(dir, "good.d3w"), *cut = join(dir, "cut.d3w");
    save_sample(path, NN_WEIGHTS_F32);
    size_t n;
    unsigned char *b = read_all(path, &n);
    size_t table = 64 + 8 * ((le64(b + 24) + 7) / 8), data = le64(b + table);   /* first data */
    cr_assert_gt(data, table + 64);
    int in_header = 0, in_config_or_table = 0, in_data = 0;
    for (size_t len = 0; len < n; len++) {
        write_all(cut, b, len);
        assert_open_fails(cut, "truncated");
        in_header += len < 64;
        in_config_or_table += len >= 64 && len < data;
        in_data += len >= data;
    }
    cr_assert(in_header == 64 && in_config_or_table > 0 && in_data > 0);
    char want[512];
    write_all(cut, b, n / 2);
    snprintf(want, sizeof want, "weights file %s is truncated: %zu of %zu bytes", cut, n / 2, n);
    cr_assert(!nn_weights_open(cut) && !strcmp(nn_last_error(), want), "'%s', want '%s'", nn_last_error(), want);
    free(b);
    remove_dir(dir);
    free(dir), free(path), free(cut);
}

Test(weights, flipped_byte_is_a_checksum_error) {
    char *dir = make_dir(), *path = join(dir, "good.d3w"), *bad = join(dir, "bad.d3w");
    save_sample(path, NN_WEIGHTS_F16);
    size_t n;
    unsigned char *b = read_all(path, &n);
    size_t table = 64 + 8 * ((le64(b + 24) + 7) / 8);
    size_t spots[] = {le64(b + table) + 5,    /* inside the first tensor's data */
                      n - 5,                  /* the last data byte */
                      n - 1,                  /* the CRC itself */
                      table + 60,             /* a name in the table */
                      70};                    /* the configuration text */
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        b[spots[i]] ^= 0x10;
        write_all(bad, b, n);
        assert_open_fails(bad, "is corrupted: checksum mismatch");
        b[spots[i]] ^= 0x10;
    }
    write_all(bad, b, n);   /* restored: opens again */
    nn_weights_file *f = nn_weights_open(bad);
    cr_assert_not_null(f, "%s", nn_last_error());
    nn_weights_close(f);
    free(b);
    remove_dir(dir);
    free(dir), free(path), free(bad);
}

Test(weights, foreign_file_is_not_a_deep3d_weights_file) {
    char *dir = make_dir(), *path = join(dir, "foreign.bin");
    const char *texts[] = {"PK\x03\x04 this could be a zip file, long enough to have a header......",
                           "abc", "\x89PNG\r\n\x1a\n and a PNG is close, but not ours ..................."};
    for (size_t i = 0; i < 3; i++) {
        write_all(path, texts[i], strlen(texts[i]));
        char want[512];
        snprintf(want, sizeof want, "%s is not a deep3d weights file", path);
        assert_open_fails(path, want);
    }
    char *missing = join(dir, "missing.d3w");
    assert_open_fails(missing, "cannot open weights file");
    cr_assert(strstr(nn_last_error(), "No such file or directory"), "%s", nn_last_error());
    assert_open_fails(dir, "not a regular file");
    remove_dir(dir);
    free(dir), free(path), free(missing);
}

Test(weights, newer_format_version_is_refused) {
    char *dir = make_dir(), *path = join(dir, "future.d3w");
    save_sample(path, NN_WEIGHTS_F32);
    size_t n;
    unsigned char *b = read_all(path, &n);
    b[8] = 2;   /* version 2, with a valid CRC so only the version is wrong */
    uint32_t crc = ref_crc32(b, n - 4);
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(crc >> (8 * i));
    write_all(path, b, n);
    assert_open_fails(path, "has format version 2; this deep3d reads versions up to 1");
    write_all(path, b, 40);   /* even when cut short, the version is what is reported */
    assert_open_fails(path, "format version 2");
    free(b);
    remove_dir(dir);
    free(dir), free(path);
}

/* Rewrites the CRC so that the reader gets past it to the structural checks. */
static void fix_crc(unsigned char *b, size_t n) {
    uint32_t crc = ref_crc32(b, n - 4);
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(crc >> (8 * i));
}

Test(weights, inconsistent_structure_with_valid_checksum_is_corrupted_never_a_crash) {
    char *dir = make_dir(), *path = join(dir, "good.d3w"), *bad = join(dir, "bad.d3w");
    save_sample(path, NN_WEIGHTS_F32);
    size_t n;
    unsigned char *good = read_all(path, &n), *b = malloc(n);
    size_t e0 = 64 + 8 * ((le64(good + 24) + 7) / 8);   /* first table entry */
    const struct { size_t at; unsigned char value; const char *what; } cases[] = {
        {e0 + 0, 8, "bad data bounds"},                    /* data offset not a multiple of 64 */
        {e0 + 16, 7, "dtype code 7"},
        {e0 + 20, 6, "6 dimensions, this deep3d supports at most 5"},
        {e0 + 20, 9, "9 dimensions"},
        {e0 + 24, 5, "bad data bounds"},                   /* shape no longer matches data size */
        {e0 + 60, ' ', "bad name"},
        {12, 9, "table"},                                  /* more tensors than the table holds */
        {24, 200, "corrupted"},                            /* config length past the table */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, n);
        b[cases[i].at] = cases[i].value;
        fix_crc(b, n);
        write_all(bad, b, n);
        assert_open_fails(bad, cases[i].what);
    }
    /* Random bytes of the header and table changed, CRC fixed: open either succeeds or
     * fails with one line naming the file (run under a sanitizer to see no bad access). */
    size_t table_end = le64(good + 32) + e0;
    for (uint64_t k = 0; k < 3000; k++) {
        memcpy(b, good, n);
        for (int j = 0; j < 3; j++) {
            size_t at = (size_t)(nn_hash_uniform(77, 3 * k + j) * (double)table_end);
            b[at] = (unsigned char)(nn_hash_uniform(78, 3 * k + j) * 256);
        }
        fix_crc(b, n);
        write_all(bad, b, n);
        nn_weights_file *f = nn_weights_open(bad);
        if (f) nn_weights_close(f);
        else cr_assert(strstr(nn_last_error(), bad) && !strchr(nn_last_error(), '\n'), "%s",
                       nn_last_error());
    }
    free(good), free(b);
    remove_dir(dir);
    free(dir), free(path), free(bad);
}

Test(weights, missing_tensor_and_shape_mismatch_name_file_and_tensor) {
    char *dir = make_dir(), *path = join(dir, "model.d3w");
    save_sample(path, NN_WEIGHTS_F32);
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    char want[512];
    nn_tensor *t = nn_tensor_new4(NN_CPU, 64, 3, 3, 3);
    cr_assert_eq(nn_weights_read(f, "conv9_9.weight", t), -1);
    snprintf(want, sizeof want, "weights file %s has no tensor 'conv9_9.weight'", path);
    cr_assert_str_eq(nn_last_error(), want);
    cr_assert_eq(nn_weights_read(f, "conv1_1.weight", t), -1);
    snprintf(want, sizeof want,
             "weights file %s: tensor 'conv1_1.weight' has shape (4, 3, 3, 3), the model expects "
             "(64, 3, 3, 3)", path);
    cr_assert_str_eq(nn_last_error(), want);
    nn_tensor *flat = nn_tensor_new4(NN_CPU, 108, 0, 0, 0);   /* same numel, other ndim */
    cr_assert_eq(nn_weights_read(f, "conv1_1.weight", flat), -1);
    cr_assert(strstr(nn_last_error(), "has shape (4, 3, 3, 3), the model expects (108)"), "%s",
              nn_last_error());
    nn_weights_close(f);
    nn_tensor_unref(t), nn_tensor_unref(flat);
    cr_assert_eq(nn_tensor_live_count(), 0);
    remove_dir(dir);
    free(dir), free(path);
}

/* ---- atomic saves ----------------------------------------------------------------- */

Test(weights, save_into_missing_directory_fails_and_leaves_nothing) {
    char *dir = make_dir(), *path = join(dir, "no_such_dir/model.d3w");
    nn_tensor *a = tu_uniform4(3, 0, 0, 0, 0, 1, 1);
    const char *names[1] = {"a"};
    cr_assert_eq(nn_weights_save(path, "", &a, names, 1, NN_WEIGHTS_F32), -1);
    cr_assert(strstr(nn_last_error(), path) && strstr(nn_last_error(), "No such file or directory"),
              "%s", nn_last_error());
    char listing[512];
    cr_assert_eq(list_dir(dir, listing, sizeof listing), 0, "left behind: %s", listing);
    nn_tensor_unref(a);
    remove_dir(dir);
    free(dir), free(path);
}

Test(weights, save_failing_midway_keeps_the_old_file_and_removes_the_temporary) {
    char *dir = make_dir(), *path = join(dir, "model.d3w");
    save_sample(path, NN_WEIGHTS_F32);
    size_t n_old;
    unsigned char *old = read_all(path, &n_old);
    /* The second tensor claims a device that does not exist: the header, the table and
     * the first tensor's data are written before its download fails. (Permissions would
     * not do: the tests may run as root.) */
    nn_tensor *good = tu_uniform4(5000, 0, 0, 0, 0, 1, 1), *real = tu_uniform4(4, 0, 0, 0, 0, 1, 2);
    nn_tensor bad = *real;
    bad.device = (nn_device)99;
    nn_tensor *ts[2] = {good, &bad};
    const char *names[2] = {"good", "bad"};
    cr_assert_eq(nn_weights_save(path, "variant=new\n", ts, names, 2, NN_WEIGHTS_F32), -1);
    cr_assert(strstr(nn_last_error(), path) && strstr(nn_last_error(), "tensor 'bad'"), "%s",
              nn_last_error());
    size_t n_now;
    unsigned char *now = read_all(path, &n_now);
    cr_assert(n_now == n_old && !memcmp(now, old, n_old), "the old file was changed");
    char listing[512];
    cr_assert_eq(list_dir(dir, listing, sizeof listing), 1, "left behind: %s", listing);
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    cr_assert_str_eq(nn_weights_config(f), CONFIG);
    nn_weights_close(f);

    /* A failure at the very end: rename onto a non-empty directory. */
    char *sub = join(dir, "model_dir"), *inside = join(sub, "keep");
    cr_assert_eq(mkdir(sub, 0755), 0);
    write_all(inside, "x", 1);
    cr_assert_eq(nn_weights_save(sub, "", ts, names, 1, NN_WEIGHTS_F32), -1);
    cr_assert(strstr(nn_last_error(), sub) && strstr(nn_last_error(), "renaming"), "%s", nn_last_error());
    cr_assert_eq(list_dir(dir, listing, sizeof listing), 2, "left behind: %s", listing);
    cr_assert_eq(list_dir(sub, listing, sizeof listing), 1, "left behind: %s", listing);

    /* And a good save over the old file replaces it. */
    cr_assert_eq(nn_weights_save(path, "variant=new\n", ts, names, 1, NN_WEIGHTS_F32), 0, "%s",
                 nn_last_error());
    f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    cr_assert_str_eq(nn_weights_config(f), "variant=new\n");
    nn_weights_close(f);
    cr_assert_eq(list_dir(dir, listing, sizeof listing), 2, "left behind: %s", listing);
    free(old), free(now);
    nn_tensor_unref(good), nn_tensor_unref(real);
    cr_assert_eq(nn_tensor_live_count(), 0);
    remove_dir(dir);
    free(dir), free(path), free(sub), free(inside);
}

/* ---- devices ---------------------------------------------------------------------- */

Test(weights, round_trip_through_cuda_tensors) {
    tu_require_cuda();
    char *dir = make_dir(), *path = join(dir, "gpu.d3w");
    nn_tensor *a = tu_uniform4(2, 3, 4, 5, -1, 1, 41);
    nn_tensor *g = nn_tensor_to(a, NN_CUDA);
    cr_assert_not_null(g, "%s", nn_last_error());
    const char *names[1] = {"a"};
    cr_assert_eq(nn_weights_save(path, "", &g, names, 1, NN_WEIGHTS_F32), 0, "%s", nn_last_error());
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    nn_tensor *r = nn_tensor_new_like(g);
    cr_assert_eq(nn_weights_read(f, "a", r), 0, "%s", nn_last_error());
    nn_real *host = tu_host(r);
    cr_assert_arr_eq(host, a->data, a->numel * sizeof(nn_real));
    free(host);
    nn_weights_close(f);
    nn_tensor_unref(a), nn_tensor_unref(g), nn_tensor_unref(r);
    remove_dir(dir);
    free(dir), free(path);
}
