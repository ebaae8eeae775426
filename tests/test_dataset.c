/* Packed datasets (data/dataset.h, data/SHARDS.md), their use as a training source
 * (data/stereo.h "DIR:SPLIT") and the multi-threaded loader on them (data/loader.h).
 *
 * Real pairs: three KITTI 2012 pairs read at test time from the shared data folder
 * ($DEEP3D_STEREO_DATA, default ../shared/data/stereo, seen from the repository root
 * where tests/run.sh runs; linked into a temporary folder, never copied into the
 * project); the test skips, saying so, when they are absent. Expected pixels: the
 * source views cropped and resized by augment_center + image_resize (what packing
 * documents), rounded to bytes: exactly equal through PNG, and through JPEG equal to
 * an independent stb_image_write -> stb_image round trip of those bytes at the same
 * quality. Everything else uses small synthetic PNG pairs written with stb_image_write
 * in a fresh mkdtemp folder. The binary (DEEP3D_BIN) is run for --info, --verify, the
 * split and 2 training steps on a packed dataset. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "../data/augment.h"
#include "../data/dataset.h"
#include "../data/loader.h"
#include "../data/stereo.h"
#include "../nn/backend.h"
#include "../nn/status.h"
#include "../nn/weights.h"
#include "testutil.h"

static char root[64];
static void make_root(void) { tu_tmpdir(root, "deep3d_test_dataset"); }
static void remove_root(void) { tu_rmtree(root); }
static const char *P(const char *name) { return tu_join(root, name); }

TestSuite(dataset, .init = make_root, .fini = remove_root, .timeout = 120);
TestSuite(cli_dataset, .init = make_root, .fini = remove_root, .timeout = 120);

#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})

static void assert_msg(const char *needle) {
    cr_assert(strstr(nn_last_error(), needle), "expected \"%s\" in: %s", needle, nn_last_error());
}

/* ---- fixtures ---- */

/* n pairs p00..p(n-1) of w x h noise (right = left shifted by 2 px) in root/dir. */
static void write_source(const char *dir, int n, int w, int h, uint64_t seed) {
    cr_assert_eq(mkdir(P(dir), 0755), 0, "mkdir %s: %s", dir, strerror(errno));
    unsigned char *l = malloc((size_t)3 * w * h), *r = malloc((size_t)3 * w * h);
    char name[256];
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 3 * w * h; k++) l[k] = (unsigned char)(256 * nn_hash_uniform(seed + (uint64_t)i, (uint64_t)k));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) r[(y * w + x) * 3 + c] = l[(y * w + (x >= 2 ? x - 2 : 0)) * 3 + c];
        snprintf(name, sizeof name, "%s/p%02d_L.png", dir, i);
        cr_assert(stbi_write_png(P(name), w, h, 3, l, 3 * w));
        snprintf(name, sizeof name, "%s/p%02d_R.png", dir, i);
        cr_assert(stbi_write_png(P(name), w, h, 3, r, 3 * w));
    }
    free(l), free(r);
}

/* A 48x20 PNG dataset at root/out of the given folders (each a source named after it). */
static void pack(const char *out, const char *const *dirs, int n_dirs, int shard_pairs, image_codec codec) {
    dataset_pack_config cfg = dataset_pack_defaults();
    cfg.width = 48, cfg.height = 20, cfg.codec = codec, cfg.shard_pairs = shard_pairs;
    dataset_writer *w = dataset_writer_open(P(out), &cfg);
    cr_assert_not_null(w, "%s", nn_last_error());
    for (int k = 0; k < n_dirs; k++) {
        stereo_dataset *ds = stereo_dataset_new();
        cr_assert_eq(stereo_dataset_add(ds, P(dirs[k]), STEREO_PAIRS), 0, "%s", nn_last_error());
        cr_assert_eq(dataset_writer_begin_source(w, dirs[k]), 0, "%s", nn_last_error());
        for (int i = 0; i < ds->n; i++) {
            image *l, *r;
            char id[64];
            snprintf(id, sizeof id, "p%02d", i);
            cr_assert_eq(stereo_load_pair(ds, i, &l, &r), 0, "%s", nn_last_error());
            cr_assert_eq(dataset_writer_add(w, l, r, (uint64_t)i, id), 0, "%s", nn_last_error());
            image_free(l), image_free(r);
        }
        stereo_dataset_free(ds);
    }
    cr_assert_eq(dataset_writer_commit(w), 0, "%s", nn_last_error());
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Byte offset of record i's left view in a shard file, read by data/SHARDS.md. */
static uint64_t record_offset(const char *shard_path, int i) {
    size_t n;
    unsigned char *b = slurp(shard_path, &n);
    uint64_t off = rd64(b + rd64(b + 32) + 48 * (uint64_t)i);
    free(b);
    return off;
}

static void flip_byte(const char *path, uint64_t at) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "fopen %s", path);
    fseek(f, (long)at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)at, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

/* An image's values rounded to bytes as image_encode stores them (round half up, clamp). */
static void round_to_bytes(image *im) {
    for (size_t k = 0; k < (size_t)3 * im->w * im->h; k++) {
        nn_real v = im->data[k];
        im->data[k] = !(v > 0) ? 0 : v >= 255 ? 255 : (nn_real)(unsigned char)(v + (nn_real)0.5);
    }
}

/* The views packing stores for a source view: the largest centred crop of 432:180,
 * resized to 432x180 (DATASET_FIT_CROP), rounded to bytes. */
static image *expected_view(const image *v) {
    augment_params p;
    augment_center(&p, v->w, v->h, 432, 180);
    image *c = image_crop(v, p.x, p.y, p.w, p.h);
    image *out = image_resize(c, 432, 180);
    image_free(c);
    round_to_bytes(out);
    return out;
}

/* An independent JPEG round trip: stb_image_write at quality q, then stb_image. */
static image *stb_jpeg_round_trip(const image *im, int q) {
    size_t plane = (size_t)im->w * im->h;
    unsigned char *px = malloc(3 * plane);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) px[3 * i + c] = (unsigned char)im->data[c * plane + i];
    const char *path = P("roundtrip.jpg");
    cr_assert(stbi_write_jpg(path, im->w, im->h, 3, px, q));
    int w, h, comp;
    unsigned char *back = stbi_load(path, &w, &h, &comp, 3);
    cr_assert_not_null(back);
    image *out = image_new(w, h);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) out->data[c * plane + i] = back[3 * i + c];
    free(px), stbi_image_free(back), unlink(path);
    return out;
}

static double max_abs_diff(const image *a, const image *b) {
    cr_assert(a->w == b->w && a->h == b->h, "sizes %dx%d vs %dx%d", a->w, a->h, b->w, b->h);
    double m = 0;
    for (size_t k = 0; k < (size_t)3 * a->w * a->h; k++) m = fmax(m, fabs((double)a->data[k] - b->data[k]));
    return m;
}

/* ---- real pairs ---- */

Test(dataset, kitti_pairs_read_back_exactly_as_png_and_as_stb_jpeg) {
    const char *data = getenv("DEEP3D_STEREO_DATA") ? getenv("DEEP3D_STEREO_DATA") : "../shared/data/stereo";
    char src[512];
    snprintf(src, sizeof src, "%s/kitti2012", data);
    struct stat st;
    if (stat(src, &st) != 0) cr_skip_test("no KITTI pairs at %s (set DEEP3D_STEREO_DATA)", src);
    cr_assert_eq(mkdir(P("k3"), 0755), 0);
    char *abs = realpath(src, NULL); /* links in the temporary folder point at the originals */
    cr_assert_not_null(abs, "%s: %s", src, strerror(errno));
    for (int i = 0; i < 3; i++)
        for (int s = 0; s < 2; s++) {
            char from[600], to[64];
            snprintf(from, sizeof from, "%s/%06d_10_%c.png", abs, i, "LR"[s]);
            snprintf(to, sizeof to, "k3/%06d_10_%c.png", i, "LR"[s]);
            cr_assert_eq(symlink(from, P(to)), 0, "symlink %s: %s", to, strerror(errno));
        }
    free(abs);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("k3"), STEREO_PAIRS), 0, "%s", nn_last_error());
    cr_assert_eq(ds->n, 3);
    for (int codec = 0; codec < 2; codec++) {
        const char *out = codec == IMAGE_PNG ? "png" : "jpg";
        dataset_pack_config cfg = dataset_pack_defaults(); /* 432x180, crop, quality 90 */
        cfg.codec = (image_codec)codec, cfg.shard_pairs = 2;
        dataset_writer *w = dataset_writer_open(P(out), &cfg);
        cr_assert_not_null(w, "%s", nn_last_error());
        cr_assert_eq(dataset_writer_begin_source(w, "kitti2012"), 0);
        for (int i = 0; i < 3; i++) {
            image *l, *r;
            char id[32];
            snprintf(id, sizeof id, "%06d_10", i);
            cr_assert_eq(stereo_load_pair(ds, i, &l, &r), 0, "%s", nn_last_error());
            cr_assert_eq(dataset_writer_add(w, l, r, (uint64_t)i, id), 0, "%s", nn_last_error());
            image_free(l), image_free(r);
        }
        cr_assert_eq(dataset_writer_commit(w), 0, "%s", nn_last_error());
        dataset *d = dataset_open(P(out), 0);
        cr_assert_not_null(d, "%s", nn_last_error());
        cr_assert_eq(dataset_record_count(d), 3);
        cr_assert_eq(dataset_shard_count(d), 2, "shard size 2: two shards for 3 pairs");
        for (int i = 0; i < 3; i++) {
            const dataset_record_info *ri = dataset_record(d, i);
            char id[32];
            snprintf(id, sizeof id, "%06d_10", i);
            cr_assert_eq(ri->frame, (uint64_t)i);
            cr_assert_str_eq(ri->name, id);
            cr_assert_str_eq(dataset_source(d, ri->source)->name, "kitti2012");
            image *l, *r, *sl, *sr;
            cr_assert_eq(dataset_read_pair(d, i, &l, &r), 0, "%s", nn_last_error());
            cr_assert_eq(stereo_load_pair(ds, i, &sl, &sr), 0);
            image *el = expected_view(sl), *er = expected_view(sr);
            if (codec == IMAGE_PNG) {
                cr_assert_eq(max_abs_diff(l, el), 0, "PNG left view %d differs", i);
                cr_assert_eq(max_abs_diff(r, er), 0, "PNG right view %d differs", i);
            } else {
                image *jl = stb_jpeg_round_trip(el, 90), *jr = stb_jpeg_round_trip(er, 90);
                cr_assert_eq(max_abs_diff(l, jl), 0, "JPEG left view %d differs from stb's round trip", i);
                cr_assert_eq(max_abs_diff(r, jr), 0, "JPEG right view %d differs from stb's round trip", i);
                cr_assert_gt(max_abs_diff(l, el), 0, "JPEG is lossy: the view should not be exact");
                image_free(jl), image_free(jr);
            }
            image_free(l), image_free(r), image_free(sl), image_free(sr), image_free(el), image_free(er);
        }
        dataset_close(d);
    }
    stereo_dataset_free(ds);
}

/* ---- the bytes, by data/SHARDS.md ---- */

Test(dataset, shard_bytes_follow_the_documented_layout) {
    write_source("a", 3, 50, 22, 1);
    write_source("b", 2, 50, 22, 9);
    const char *dirs[] = {"a", "b"};
    pack("ds", dirs, 2, 10, IMAGE_PNG);
    size_t n;
    unsigned char *b = slurp(P("ds/shard-000000.d3s"), &n);
    static const unsigned char magic[8] = {0x89, 'D', '3', 'S', '\r', '\n', 0x1a, '\n'};
    cr_assert(!memcmp(b, magic, 8), "magic");
    cr_assert_eq(rd32(b + 8), 1, "version");
    cr_assert_eq(rd32(b + 12), 1, "codec PNG");
    cr_assert(rd32(b + 16) == 48 && rd32(b + 20) == 20, "view size");
    cr_assert_eq(rd32(b + 24), 2, "sources");
    uint32_t recs = rd32(b + 28);
    cr_assert_eq(recs, 5);
    uint64_t I = rd64(b + 32), D = rd64(b + 40);
    cr_assert_eq(rd64(b + 48), n, "file_bytes");
    cr_assert_eq(rd32(b + 60), nn_crc32(nn_crc32(0, b, 60), b + 64, I - 64), "header CRC");
    /* source table: "a", "b", each padded to 8 */
    cr_assert(rd32(b + 64) == 1 && b[68] == 'a' && rd32(b + 72) == 1 && b[76] == 'b' && I == 80, "source table");
    uint64_t names = I + 48 * recs, expect_at = D;
    for (uint32_t i = 0; i < recs; i++) {
        const unsigned char *e = b + I + 48 * i;
        uint64_t off = rd64(e);
        uint32_t lb = rd32(e + 8), rb = rd32(e + 12), nb = rd32(e + 32);
        cr_assert_eq(off, expect_at, "records back to back from D");
        cr_assert_eq(rd64(e + 16), i < 3 ? i : i - 3, "frame");
        cr_assert_eq(rd32(e + 24), i < 3 ? 0u : 1u, "source");
        char want[8];
        snprintf(want, sizeof want, "p%02u", i < 3 ? i : i - 3);
        cr_assert(nb == 3 && !memcmp(b + names + rd32(e + 28), want, 3), "frame name of record %u", i);
        uint32_t crc = nn_crc32(nn_crc32(nn_crc32(0, e, 44), b + names + rd32(e + 28), nb), b + off, lb + rb);
        cr_assert_eq(rd32(e + 44), crc, "record %u CRC", i);
        for (int v = 0; v < 2; v++) {
            int w, h, c;
            unsigned char *px = stbi_load_from_memory(b + off + (v ? lb : 0), (int)(v ? rb : lb), &w, &h, &c, 3);
            cr_assert(px && w == 48 && h == 20, "record %u view %d decodes at 48x20", i, v);
            stbi_image_free(px);
        }
        expect_at = off + lb + rb;
    }
    cr_assert_eq(expect_at, n, "the data ends the file");
    free(b);
    /* the manifest: its last line is the CRC of the bytes before it */
    unsigned char *m = slurp(P("ds/manifest.d3d"), &n);
    cr_assert(n > 15 && !memcmp(m + n - 15, "crc32 ", 6));
    char want[16];
    snprintf(want, sizeof want, "%08x", nn_crc32(0, m, n - 15));
    cr_assert(!memcmp(m + n - 9, want, 8), "manifest CRC");
    cr_assert(strstr((char *)m, "source none 3 a\n") && strstr((char *)m, "shard shard-000000.d3s 5 "), "%.*s", (int)n, m);
    free(m);
}

/* ---- splits ---- */

/* The sources each record of DIR:split belongs to (counts per source index). */
static void split_members(const char *ref, int n_sources, long *count) {
    memset(count, 0, (size_t)n_sources * sizeof *count);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, ref, STEREO_PAIRS), 0, "%s: %s", ref, nn_last_error());
    for (int i = 0; i < ds->n; i++) {
        cr_assert_eq(ds->items[i].layout, STEREO_PACKED);
        count[dataset_record(ds->items[i].pack, ds->items[i].record)->source]++;
    }
    stereo_dataset_free(ds);
}

Test(dataset, split_by_source_never_mixes_sources_and_is_deterministic) {
    const char *dirs[] = {"s1", "s2", "s3", "s4", "s5", "s6", "s7"};
    for (int k = 0; k < 7; k++) write_source(dirs[k], k + 1, 30, 14, 100 * (uint64_t)k);
    pack("ds", dirs, 7, 4, IMAGE_PNG); /* 28 pairs; sources span shards */
    pack("copy", dirs, 7, 4, IMAGE_PNG);
    stereo_dataset *probe = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(probe, tu_join(P("ds"), ":train"), STEREO_PAIRS), -1, "no split yet");
    assert_msg("has not been split");
    stereo_dataset_free(probe);
    cr_assert_eq(dataset_assign_splits(P("ds"), 0.2, 0.2, 7, 0), 0, "%s", nn_last_error());
    cr_assert_eq(dataset_assign_splits(P("copy"), 0.2, 0.2, 7, 0), 0, "%s", nn_last_error());
    long member[4][7];
    const char *parts[] = {"train", "val", "test", "all"};
    char ref[128];
    for (int s = 0; s < 4; s++) {
        snprintf(ref, sizeof ref, "%s:%s", P("ds"), parts[s]);
        split_members(ref, 7, member[s]);
    }
    dataset *d = dataset_open(P("ds"), 0), *c = dataset_open(P("copy"), 0);
    cr_assert(d && c, "%s", nn_last_error());
    long per_split[4] = {0};
    for (int k = 0; k < 7; k++) {
        const dataset_source_info *si = dataset_source(d, k);
        int in = 0;
        for (int s = 0; s < 3; s++) {
            if (member[s][k]) {
                in++;
                cr_assert_eq(member[s][k], si->pairs, "source %s: only part of it in %s", si->name, parts[s]);
                cr_assert_eq((int)si->split, s + 1, "source %s listed in %s", si->name, parts[s]);
            }
            per_split[s] += member[s][k];
        }
        cr_assert_eq(in, 1, "source %s is in %d splits", si->name, in);
        cr_assert_eq(member[3][k], si->pairs, "DIR:all has all of %s", si->name);
        cr_assert_eq(dataset_source(c, k)->split, si->split, "same input and seed, other split for %s", si->name);
    }
    cr_assert(per_split[1] > 0 && per_split[2] > 0, "val %ld and test %ld pairs", per_split[1], per_split[2]);
    cr_assert_eq(per_split[0] + per_split[1] + per_split[2], 28);
    dataset_close(c);
    /* a dataset that is split must be named with its part */
    probe = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(probe, P("ds"), STEREO_PAIRS), -1);
    assert_msg("name the part");
    stereo_dataset_free(probe);
    /* appending a source later keeps every earlier assignment */
    dataset_split before[7];
    for (int k = 0; k < 7; k++) before[k] = dataset_source(d, k)->split;
    dataset_close(d);
    write_source("s8", 9, 30, 14, 800);
    const char *more[] = {"s8"};
    pack("ds", more, 1, 4, IMAGE_JPEG);
    cr_assert_eq(dataset_assign_splits(P("ds"), 0.2, 0.2, 7, 0), 0, "%s", nn_last_error());
    d = dataset_open(P("ds"), 0);
    for (int k = 0; k < 7; k++) cr_assert_eq(dataset_source(d, k)->split, before[k], "source %d moved", k);
    cr_assert_neq(dataset_source(d, 7)->split, SPLIT_NONE, "the new source got a split");
    dataset_close(d);
    /* more splits than sources */
    const char *one[] = {"s1"};
    pack("single", one, 1, 4, IMAGE_PNG);
    cr_assert_eq(dataset_assign_splits(P("single"), 0.1, 0.1, 1, 0), -1);
    assert_msg("cannot give train, val, test a source each");
}

/* ---- damage ---- */

Test(dataset, a_flipped_byte_is_reported_by_name_and_skipped_by_the_loader) {
    write_source("a", 3, 50, 22, 1);
    write_source("b", 3, 50, 22, 9);
    const char *dirs[] = {"a", "b"};
    pack("ds", dirs, 2, 4, IMAGE_JPEG);
    /* 4 pairs per shard: shard 0 holds a's 3 and b's frame 0, so record 0 of shard 1
     * is b's frame 1, pair 4 of the dataset */
    flip_byte(P("ds/shard-000001.d3s"), record_offset(P("ds/shard-000001.d3s"), 0) + 40);
    dataset *d = dataset_open(P("ds"), 0);
    cr_assert_not_null(d, "a damaged record does not stop the open: %s", nn_last_error());
    int bad = 0;
    for (long r = 0; r < dataset_record_count(d); r++)
        if (dataset_check_record(d, r, 1)) {
            bad++;
            cr_assert_eq(r, 4);
            assert_msg("shard-000001.d3s record 0 (source 'b', frame 1 'p01'): checksum mismatch");
        }
    cr_assert_eq(bad, 1);
    dataset_close(d);

    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("ds"), STEREO_PAIRS), 0, "%s", nn_last_error());
    loader_config cfg = loader_defaults();
    cfg.batch = 12, cfg.width = 24, cfg.height = 10, cfg.threads = 2;
    loader *ld = loader_create(ds, &cfg);
    cr_assert_not_null(ld, "%s", nn_last_error());
    for (int s = 0; s < 3; s++) {
        loader_batch b;
        cr_assert_eq(loader_next(ld, &b), 0, "%s", nn_last_error());
        for (int i = 0; i < b.n; i++) cr_assert_neq(b.pair[i], 4, "the damaged record was used");
    }
    cr_assert_eq(loader_warning_count(ld), 1);
    cr_assert(strstr(loader_last_warning(ld), "shard-000001.d3s record 0 (source 'b', frame 1 'p01')"), "warning: %s",
              loader_last_warning(ld));
    loader_free(ld);
    stereo_dataset_free(ds);
}

Test(dataset, truncated_shards_and_manifests_are_detected) {
    write_source("a", 5, 50, 22, 1);
    const char *dirs[] = {"a"};
    pack("ds", dirs, 1, 3, IMAGE_PNG);
    long full = file_size(P("ds/shard-000000.d3s"));
    cr_assert_eq(truncate(P("ds/shard-000000.d3s"), full - 100), 0);
    cr_assert_null(dataset_open(P("ds"), 0));
    char want[128];
    snprintf(want, sizeof want, "shard-000000.d3s is truncated: %ld of %ld bytes", full - 100, full);
    assert_msg(want);
    dataset *d = dataset_open(P("ds"), 1);
    cr_assert_not_null(d, "%s", nn_last_error());
    cr_assert(dataset_shard(d, 0)->problem && strstr(dataset_shard(d, 0)->problem, "truncated"));
    cr_assert_eq(dataset_check_record(d, 2, 1), -1, "the last record is cut off");
    assert_msg("record 2 (source 'a', frame 2 'p02'): its bytes are cut off");
    cr_assert_eq(dataset_check_record(d, 0, 1), 0, "the first is whole: %s", nn_last_error());
    dataset_close(d);
    /* cut inside the index: the shard cannot be indexed */
    cr_assert_eq(truncate(P("ds/shard-000000.d3s"), 100), 0);
    cr_assert_null(dataset_open(P("ds"), 0));
    assert_msg("inside its index");
    /* a manifest cut short has no crc32 line; a flipped byte fails its CRC */
    size_t n;
    unsigned char *m = slurp(P("ds/manifest.d3d"), &n);
    FILE *f = fopen(P("ds/manifest.d3d"), "wb");
    fwrite(m, 1, n - 5, f), fclose(f);
    cr_assert_null(dataset_open(P("ds"), 1));
    assert_msg("does not end with its crc32 line");
    m[20] ^= 1;
    f = fopen(P("ds/manifest.d3d"), "wb");
    fwrite(m, 1, n, f), fclose(f);
    cr_assert_null(dataset_open(P("ds"), 1));
    assert_msg("manifest.d3d is corrupted: checksum mismatch");
    free(m);
}

Test(dataset, a_half_written_dataset_is_detected) {
    write_source("a", 2, 50, 22, 1);
    const char *dirs[] = {"a"};
    pack("ds", dirs, 1, 10, IMAGE_PNG);
    /* a shard renamed into place by a pack that then stopped before its manifest */
    size_t n;
    unsigned char *b = slurp(P("ds/shard-000000.d3s"), &n);
    FILE *f = fopen(P("ds/shard-000001.d3s"), "wb");
    fwrite(b, 1, n, f), fclose(f);
    cr_assert_null(dataset_open(P("ds"), 0));
    assert_msg("is half-written: 1 file is not in its manifest (shard-000001.d3s)");
    dataset_pack_config cfg = dataset_pack_defaults();
    cr_assert_null(dataset_writer_open(P("ds"), &cfg), "appending to a half-written dataset");
    assert_msg("half-written");
    cr_assert_eq(unlink(P("ds/shard-000001.d3s")), 0);
    /* a temporary of a shard being written when the pack was killed */
    f = fopen(P("ds/.deep3d-AbC123"), "wb");
    fwrite(b, 1, 10, f), fclose(f);
    cr_assert_null(dataset_open(P("ds"), 0));
    assert_msg(".deep3d-AbC123");
    cr_assert_eq(unlink(P("ds/.deep3d-AbC123")), 0);
    dataset *d = dataset_open(P("ds"), 0);
    cr_assert_not_null(d, "as it was: %s", nn_last_error());
    dataset_close(d);
    /* shards and no manifest: the first pack did not finish */
    cr_assert_eq(mkdir(P("first"), 0755), 0);
    f = fopen(P("first/shard-000000.d3s"), "wb");
    fwrite(b, 1, n, f), fclose(f);
    cr_assert_eq(dataset_is_packed(P("first")), 1);
    cr_assert_null(dataset_open(P("first"), 0));
    assert_msg("has shard files but no manifest.d3d");
    free(b);
}

Test(dataset, the_writer_refuses_what_it_must_not_overwrite_and_aborts_cleanly) {
    write_source("a", 3, 50, 22, 1);
    write_source("b", 2, 50, 22, 2);
    dataset_pack_config cfg = dataset_pack_defaults();
    /* a folder of the user's files */
    cr_assert_null(dataset_writer_open(P("a"), &cfg));
    assert_msg("exists and is not a deep3d dataset");
    cr_assert_eq(file_size(P("a/manifest.d3d")), -1, "nothing written into it");
    const char *dirs[] = {"a"};
    pack("ds", dirs, 1, 2, IMAGE_PNG);
    size_t n0;
    unsigned char *before = slurp(P("ds/manifest.d3d"), &n0);
    /* another size; a source that exists */
    cfg.width = 64, cfg.height = 32;
    cr_assert_null(dataset_writer_open(P("ds"), &cfg));
    assert_msg("is 48x20; --size asks for 64x32");
    cfg.width = cfg.height = 0, cfg.shard_pairs = 2; /* the dataset's own size */
    dataset_writer *w = dataset_writer_open(P("ds"), &cfg);
    cr_assert_not_null(w, "%s", nn_last_error());
    cr_assert_eq(dataset_writer_config(w)->width, 48);
    cr_assert_null(dataset_writer_open(P("ds"), &cfg), "a second writer");
    assert_msg("being written by another process");
    cr_assert_eq(dataset_writer_begin_source(w, "a"), -1);
    assert_msg("source 'a' is already in the dataset (3 pairs)");
    /* a run that fails half-way leaves the dataset as it was */
    cr_assert_eq(dataset_writer_begin_source(w, "b"), 0);
    image *l = image_new(50, 22), *r = image_new(50, 22);
    for (int i = 0; i < 5; i++) cr_assert_eq(dataset_writer_add(w, l, r, (uint64_t)i, ""), 0, "%s", nn_last_error());
    cr_assert_eq(dataset_writer_shards(w), 2, "two full shards written");
    cr_assert_gt(file_size(P("ds/shard-000003.d3s")), 0);
    dataset_writer_abort(w);
    cr_assert_eq(file_size(P("ds/shard-000002.d3s")), -1, "the aborted run's shards are removed");
    cr_assert_eq(file_size(P("ds/shard-000003.d3s")), -1);
    size_t n1;
    unsigned char *after = slurp(P("ds/manifest.d3d"), &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the manifest changed");
    dataset *d = dataset_open(P("ds"), 0);
    cr_assert_not_null(d, "%s", nn_last_error());
    cr_assert_eq(dataset_record_count(d), 3);
    dataset_close(d);
    image_free(l), image_free(r), free(before), free(after);
}

/* ---- the loader on a packed dataset ---- */

/* Copies of `count` batches from a loader with the given threads, prefetch and cache. */
static nn_real *batches(const stereo_dataset *ds, int threads, int prefetch, size_t cache, int count, size_t *per) {
    loader_config cfg = loader_defaults();
    cfg.batch = 5, cfg.width = 24, cfg.height = 10, cfg.seed = 77, cfg.threads = threads, cfg.prefetch = prefetch;
    cfg.cache_bytes = cache;
    loader *ld = loader_create(ds, &cfg);
    cr_assert_not_null(ld, "%s", nn_last_error());
    *per = (size_t)cfg.batch * 3 * cfg.width * cfg.height;
    nn_real *all = malloc(2 * *per * count * sizeof *all);
    for (int s = 0; s < count; s++) {
        loader_batch b;
        cr_assert_eq(loader_next(ld, &b), 0, "%s", nn_last_error());
        cr_assert_eq(b.step, s);
        memcpy(all + 2 * *per * s, b.left, *per * sizeof *all);
        memcpy(all + 2 * *per * s + *per, b.right, *per * sizeof *all);
    }
    loader_stat st;
    loader_stats(ld, &st);
    cr_assert_eq(st.threads, threads);
    cr_assert_geq(st.samples, (long)count * cfg.batch);
    loader_free(ld);
    return all;
}

Test(dataset, loader_batches_do_not_depend_on_the_thread_count) {
    write_source("a", 4, 60, 30, 1);
    write_source("b", 3, 60, 30, 5);
    const char *dirs[] = {"a", "b"};
    pack("ds", dirs, 2, 3, IMAGE_JPEG);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("ds"), STEREO_PAIRS), 0, "%s", nn_last_error());
    size_t per;
    nn_real *one = batches(ds, 1, 1, 0, 6, &per);
    nn_real *four = batches(ds, 4, 3, 0, 6, &per);
    nn_real *cached = batches(ds, 4, 2, (size_t)1 << 30, 6, &per);
    cr_assert(!memcmp(one, four, 2 * per * 6 * sizeof *one), "1 and 4 threads give different batches");
    cr_assert(!memcmp(one, cached, 2 * per * 6 * sizeof *one), "the cache changes the batches");
    free(one), free(four), free(cached);
    stereo_dataset_free(ds);
}

/* Data parallelism (loader.h): three loaders holding samples 0-1, 2-3 and 4-5 of a
 * global batch of 6 give, step after step, the slices of one loader's batch of 6. */
Test(dataset, loader_parts_of_a_global_batch_are_its_slices) {
    write_source("a", 5, 60, 30, 1);
    write_source("b", 4, 60, 30, 5);
    const char *dirs[] = {"a", "b"};
    pack("ds", dirs, 2, 3, IMAGE_JPEG);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("ds"), STEREO_PAIRS), 0, "%s", nn_last_error());
    enum { G = 6, PART = 2, STEPS = 4 };
    loader_config cfg = loader_defaults();
    cfg.batch = G, cfg.width = 24, cfg.height = 10, cfg.seed = 9, cfg.threads = 2, cfg.cache_bytes = 0;
    loader *whole = loader_create(ds, &cfg);
    cr_assert_not_null(whole, "%s", nn_last_error());
    loader *parts[G / PART];
    for (int r = 0; r < G / PART; r++) {
        loader_config pc = cfg;
        pc.batch = PART, pc.global_batch = G, pc.first_sample = r * PART, pc.threads = 1;
        cr_assert_not_null(parts[r] = loader_create(ds, &pc), "%s", nn_last_error());
    }
    const size_t sample = (size_t)3 * cfg.width * cfg.height;
    int pairs_differ = 0;
    for (int s = 0; s < STEPS; s++) {
        loader_batch b;
        cr_assert_eq(loader_next(whole, &b), 0, "%s", nn_last_error());
        for (int r = 0; r < G / PART; r++) {
            loader_batch p;
            cr_assert_eq(loader_next(parts[r], &p), 0, "%s", nn_last_error());
            cr_assert_eq(p.n, PART);
            cr_assert_eq(p.step, s);
            for (int i = 0; i < PART; i++) {
                cr_assert_eq(p.pair[i], b.pair[r * PART + i], "step %d, part %d, sample %d: pair %d, whole batch %d", s, r,
                             i, p.pair[i], b.pair[r * PART + i]);
                pairs_differ |= p.pair[i] != b.pair[i];
            }
            cr_assert(!memcmp(p.left, b.left + r * PART * sample, PART * sample * sizeof *p.left),
                      "step %d, part %d: left views differ from the whole batch's slice", s, r);
            cr_assert(!memcmp(p.right, b.right + r * PART * sample, PART * sample * sizeof *p.right),
                      "step %d, part %d: right views differ from the whole batch's slice", s, r);
        }
    }
    cr_assert(pairs_differ, "every part took the first part's pairs: the test would not see an offset ignored");
    for (int r = 0; r < G / PART; r++) loader_free(parts[r]);
    loader_free(whole);
    /* a part outside the global batch is refused */
    loader_config bad = cfg;
    bad.batch = 4, bad.global_batch = 6, bad.first_sample = 3;
    cr_assert_null(loader_create(ds, &bad));
    assert_msg("samples 3..6 of a global batch of 6");
    stereo_dataset_free(ds);
}

/* ---- through the binary ---- */

Test(cli_dataset, pack_append_info_split_verify_and_train_two_steps) {
    write_source("kitti", 4, 64, 28, 1);
    write_source("movie", 3, 64, 28, 2);
    write_source("other", 2, 64, 28, 3);
    tc_result r;
    RUN(&r, "dataset", "--threads", "1", "--from-pairs", P("kitti"), "--from-pairs", P("movie"), "--out", P("ds"),
        "--size", "96x40", "--shard-size", "3");
    cr_assert(r.exited && r.status == 0, "pack: %s", r.err);
    cr_assert(strstr(r.out, "packed 7 pairs of 2 sources"), "%s", r.out);
    tc_free(&r);
    RUN(&r, "dataset", "--threads", "1", "--from-pairs", P("other"), "--out", P("ds"), "--format", "png");
    cr_assert(r.exited && r.status == 0, "append: %s", r.err);
    tc_free(&r);
    RUN(&r, "dataset", "--from-pairs", P("other"), "--out", P("ds"));
    tc_expect_error(&r, "a source twice", "already has a source 'other'", "--source", NULL);
    tc_free(&r);
    RUN(&r, "dataset", "--split", P("ds"), "--val", "0.2", "--test", "0.2");
    cr_assert(r.exited && r.status == 0, "split: %s", r.err);
    tc_free(&r);
    RUN(&r, "dataset", "--info", P("ds"));
    cr_assert(r.exited && r.status == 0, "info: %s", r.err);
    cr_assert(strstr(r.out, "96x40 views, 3 sources, 9 pairs in 4 shards"), "%s", r.out);
    dataset *d = dataset_open(P("ds"), 0);
    cr_assert_not_null(d, "%s", nn_last_error());
    for (int k = 0; k < 3; k++) { /* each source's line: name, its split, its pairs */
        char line[128];
        const dataset_source_info *s = dataset_source(d, k);
        snprintf(line, sizeof line, "%-40s %-6s %10ld\n", s->name, dataset_split_name(s->split), s->pairs);
        cr_assert(strstr(r.out, line), "no line '%s' in:\n%s", line, r.out);
    }
    dataset_close(d);
    tc_free(&r);
    RUN(&r, "dataset", "--verify", P("ds"));
    cr_assert(r.exited && r.status == 0, "verify of a good dataset: %s%s", r.out, r.err);
    tc_free(&r);
    RUN(&r, "train", "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16",
        "--disparities", "9", "--dmin", "-4", "--batch", "2", "--steps", "2", "--data", tu_join(P("ds"), ":train"),
        "--val-data", tu_join(P("ds"), ":val"), "--out", P("run"));
    cr_assert(r.exited && r.status == 0, "train on DIR:train: %s", r.err);
    cr_assert(strstr(r.out, "done: 2 steps"), "%s", r.out);
    tc_free(&r);
    RUN(&r, "train", "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16",
        "--steps", "2", "--data", P("ds"), "--out", P("run2"));
    tc_expect_error(&r, "a split dataset without its part", "name the part", NULL);
    tc_free(&r);
    /* a flipped byte: --verify names the record, exits 1 */
    flip_byte(P("ds/shard-000000.d3s"), record_offset(P("ds/shard-000000.d3s"), 2) + 7);
    RUN(&r, "dataset", "--verify", P("ds"));
    tc_expect_error(&r, "verify of a damaged dataset", "1 bad record", NULL);
    cr_assert(strstr(r.out, "shard-000000.d3s record 2 (source 'kitti', frame 2 'p02'): checksum mismatch"), "%s",
              r.out);
    tc_free(&r);
}

Test(cli_dataset, bad_usage_is_one_line) {
    tc_result r;
    RUN(&r, "dataset", "--info", P("nope"));
    tc_expect_error(&r, "missing dataset", P("nope"), NULL);
    tc_free(&r);
    RUN(&r, "dataset", "--info", P("a"), "--verify", P("a"));
    tc_expect_error(&r, "two actions", "exactly one of", NULL);
    tc_free(&r);
    write_source("a", 1, 30, 14, 1);
    RUN(&r, "dataset", "--from-pairs", P("a"), "--out", P("a"));
    tc_expect_error(&r, "packing into a folder of pairs", "not a deep3d dataset", NULL);
    tc_free(&r);
    RUN(&r, "dataset", "--from-pairs", P("a"), "--out", P("ds"), "--size", "432by180");
    tc_expect_error(&r, "bad --size", "--size", "432by180", NULL);
    tc_free(&r);
}
