/* deep3d dataset: packs stereo pairs into a packed dataset (data/dataset.h), splits it
 * by source, shows and verifies it.
 *
 *   --from-pairs DIR ... --out DIR   each folder (a layout of data/stereo.h) becomes one
 *                                    source, named after the folder or by --source; its
 *                                    pairs are fitted to the base size (432x180 by
 *                                    default, the paper's) and appended, JPEG or PNG;
 *                                    with --val/--test the dataset is then split;
 *   --from-video FILE ... --out DIR  each 3D movie becomes one source, named after the
 *                                    file or by --source: decoded by ffmpeg, its layout
 *                                    detected (--layout auto) or given, frames chosen
 *                                    (--every / --fps, near-duplicates, scene cuts and
 *                                    black frames skipped), letterbox cropped, fitted
 *                                    and appended as --from-pairs does (data/movie.h);
 *   --split DIR --val F --test F     assigns whole sources to train, val and test;
 *   --info DIR                       counts per source and split;
 *   --verify DIR                     checks every record; names the bad ones; exit 1 if any.
 * Pairs are decoded and encoded in parallel (OpenMP, chunks of pairs) and appended in
 * their sorted order, so a dataset does not depend on the thread count. A pair that
 * cannot be read is skipped with a warning naming it, as training skips it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/dataset.h"
#include "../data/movie.h"
#include "../data/stereo.h"
#include "../nn/status.h"
#include "cli.h"
#include "commands.h"
#include "runtime.h"

#define CHUNK 32 /* pairs decoded and encoded in parallel before they are appended */

typedef struct {
    cli_list from_pairs, from_video, sources;
    const char *out, *layout, *size, *format, *fit, *split, *info, *verify;
    long quality, shard_size, seed, threads, every;
    double val, test, fps, min_change;
    int reassign;
} dataset_opts;

/* The source name of a folder: its last path component ("a/b/" -> "b"). */
static void folder_name(const char *path, char *buf, size_t size) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *start = path + n;
    while (start > path && start[-1] != '/') start--;
    snprintf(buf, size, "%.*s", (int)(path + n - start), start);
}

/* The pair's id: the left file's name without extension and without a trailing "_L". */
static void pair_id(const stereo_item *it, char *buf, size_t size) {
    deep3d_stem(it->left, buf, (int)size);
    size_t n = strlen(buf);
    if (it->layout == STEREO_PAIRS && n > 2 && !strcmp(buf + n - 2, "_L")) buf[n - 2] = '\0';
}

static void print_info(const dataset *d) {
    int w, h, n_src = dataset_source_count(d);
    dataset_size(d, &w, &h);
    long pairs = 0, per_split[SPLIT_ALL] = {0}, sources_in[SPLIT_ALL] = {0};
    unsigned long long bytes = 0;
    int jpg = 0, png = 0;
    for (int i = 0; i < n_src; i++) {
        const dataset_source_info *s = dataset_source(d, i);
        pairs += s->pairs, per_split[s->split] += s->pairs, sources_in[s->split]++;
    }
    for (int k = 0; k < dataset_shard_count(d); k++) {
        const dataset_shard_info *s = dataset_shard(d, k);
        bytes += s->bytes;
        jpg += s->codec == IMAGE_JPEG, png += s->codec == IMAGE_PNG;
    }
    printf("dataset %s: %dx%d views, %d source%s, %ld pairs in %d shard%s (%.1f MB%s%s)\n", dataset_dir(d), w, h,
           n_src, n_src == 1 ? "" : "s", pairs, dataset_shard_count(d), dataset_shard_count(d) == 1 ? "" : "s",
           (double)bytes / 1e6, jpg ? ", jpg" : "", png ? ", png" : "");
    printf("\n%-8s %8s %10s\n", "split", "sources", "pairs");
    for (int s = SPLIT_TRAIN; s <= SPLIT_TEST + 1; s++) {
        int sp = s == SPLIT_TEST + 1 ? SPLIT_NONE : s; /* "none" (not assigned) last */
        printf("%-8s %8ld %10ld\n", dataset_split_name((dataset_split)sp), sources_in[sp], per_split[sp]);
    }
    printf("\n%-40s %-6s %10s\n", "source", "split", "pairs");
    for (int i = 0; i < n_src; i++) {
        const dataset_source_info *s = dataset_source(d, i);
        printf("%-40s %-6s %10ld\n", s->name, dataset_split_name(s->split), s->pairs);
    }
    for (int k = 0; k < dataset_shard_count(d); k++)
        if (dataset_shard(d, k)->problem)
            printf("damaged: %s (deep3d dataset --verify lists every bad record)\n", dataset_shard(d, k)->problem);
    if (dataset_unlisted(d)) printf("%s\n", dataset_unlisted(d));
}

/* A source name the dataset already holds is refused (one line; the writer aborted, so
 * nothing of this run is left): 0 when none of names[0..n) is there. */
static int refuse_existing_sources(dataset_writer *w, const char (*names)[256], int n, const char *out) {
    for (int i = 0; i < n; i++)
        if (dataset_writer_has_source(w, names[i])) {
            dataset_writer_abort(w);
            cli_error("dataset", "dataset %s already has a source '%s': name the new one with --source", out, names[i]);
            return -1;
        }
    return 0;
}

static int cmd_info(const char *dir) {
    dataset *d = dataset_open(dir, 1);
    if (!d) return cli_error("dataset", "%s", nn_last_error());
    print_info(d);
    dataset_close(d);
    return 0;
}

static int cmd_verify(const char *dir) {
    dataset *d = dataset_open(dir, 1);
    if (!d) return cli_error("dataset", "%s", nn_last_error());
    const int tty = cli_is_tty();
    long n = dataset_record_count(d), bad = 0, unreadable = 0, listed = 0;
    int problems = 0;
    if (dataset_unlisted(d)) printf("%s\n", dataset_unlisted(d)), problems++;
    for (int k = 0; k < dataset_shard_count(d); k++) {
        const dataset_shard_info *s = dataset_shard(d, k);
        listed += s->records;
        if (s->problem) printf("bad shard: dataset %s: %s\n", dir, s->problem), problems++;
    }
    /* records the index lists, by source, against the manifest's counts */
    long *per_source = calloc((size_t)dataset_source_count(d) + 1, sizeof *per_source);
    char *msgs = malloc((size_t)CHUNK * 1024);
    int *failed = malloc(CHUNK * sizeof *failed);
    if (!per_source || !msgs || !failed) {
        free(per_source), free(msgs), free(failed), dataset_close(d);
        return cli_error("dataset", "out of memory");
    }
    for (long r = 0; r < n; r++) per_source[dataset_record(d, r)->source]++;
    for (long r0 = 0; r0 < n; r0 += CHUNK) {
        int m = n - r0 < CHUNK ? (int)(n - r0) : CHUNK;
#pragma omp parallel for schedule(dynamic, 1)
        for (int j = 0; j < m; j++) {
            failed[j] = dataset_check_record(d, r0 + j, 1) != 0;
            if (failed[j]) snprintf(msgs + (size_t)j * 1024, 1024, "%s", nn_last_error());
        }
        for (int j = 0; j < m; j++)
            if (failed[j]) printf("%sbad record: %s\n", tty ? "\r" : "", msgs + (size_t)j * 1024), bad++;
        if (tty) fprintf(stderr, "\rverifying %s: %ld/%ld records, %ld bad   ", dir, r0 + m, n, bad);
    }
    if (tty) fputc('\n', stderr);
    unreadable = listed - n; /* records of shards whose index could not be read */
    for (int i = 0; i < dataset_source_count(d); i++) {
        const dataset_source_info *s = dataset_source(d, i);
        if (per_source[i] != s->pairs && unreadable == 0)
            printf("bad source: dataset %s: source '%s' has %ld pairs in the manifest, %ld in the shards\n", dir,
                   s->name, s->pairs, per_source[i]), problems++;
    }
    free(per_source), free(msgs), free(failed);
    printf("%s: %ld records checked (checksum, both views decodable at the base size): %ld bad\n", dir, n, bad);
    if (unreadable) printf("%s: %ld records in damaged shards could not be checked\n", dir, unreadable);
    dataset_close(d);
    if (bad || problems || unreadable)
        return cli_error("dataset", "dataset %s is damaged: %ld bad record%s, %ld unreadable, %d other problem%s "
                                    "(listed above)",
                         dir, bad, bad == 1 ? "" : "s", unreadable, problems, problems == 1 ? "" : "s");
    return 0;
}

/* Packs every pair of ds as source `name`, chunk by chunk: decoded and encoded in
 * parallel, appended in order. Unreadable pairs are skipped with a warning. */
static int pack_source(dataset_writer *w, const stereo_dataset *ds, const char *name, long *skipped, int tty) {
    const dataset_pack_config *cfg = dataset_writer_config(w);
    dataset_encoded enc[CHUNK];
    char ids[CHUNK][256], why[CHUNK][600];
    int ok[CHUNK];
    if (dataset_writer_begin_source(w, name)) return -1;
    for (int i0 = 0; i0 < ds->n; i0 += CHUNK) {
        int m = ds->n - i0 < CHUNK ? ds->n - i0 : CHUNK;
#pragma omp parallel for schedule(dynamic, 1)
        for (int j = 0; j < m; j++) {
            image *l = NULL, *r = NULL;
            pair_id(&ds->items[i0 + j], ids[j], sizeof ids[j]);
            ok[j] = stereo_load_pair(ds, i0 + j, &l, &r) == 0 &&
                    dataset_encode_pair(cfg, l, r, ds->items[i0 + j].left, &enc[j]) == 0;
            if (!ok[j]) snprintf(why[j], sizeof why[j], "%s", nn_last_error());
            image_free(l), image_free(r);
        }
        int rc = 0;
        for (int j = 0; j < m; j++) {
            if (!ok[j]) {
                fprintf(stderr, "%swarning: %s (pair skipped)\n", tty ? "\n" : "", why[j]);
                ++*skipped;
            } else if (!rc) {
                rc = dataset_writer_add_encoded(w, &enc[j], (uint64_t)(i0 + j), ids[j]);
            } else {
                dataset_encoded_free(&enc[j]);
            }
        }
        if (rc) return -1;
        if (tty) fprintf(stderr, "\rpacking %s: %d/%d pairs   ", name, i0 + m, ds->n);
    }
    return 0;
}

static int parse_size(const char *s, int *w, int *h) {
    int k = 0;
    return sscanf(s, "%dx%d%n", w, h, &k) == 2 && s[k] == '\0' && *w >= 1 && *h >= 1 && *w <= 16384 && *h <= 16384
               ? 0
               : -1;
}

/* The writer's configuration from the options; 2 (usage) on a bad --size. */
static int pack_config(const dataset_opts *o, dataset_pack_config *cfg) {
    *cfg = dataset_pack_defaults();
    if (o->size && parse_size(o->size, &cfg->width, &cfg->height))
        return cli_error("dataset", "--size must be WIDTHxHEIGHT (e.g. 432x180), got '%s'", o->size), 2;
    cfg->codec = !strcmp(o->format, "png") ? IMAGE_PNG : IMAGE_JPEG;
    cfg->quality = (int)o->quality, cfg->shard_pairs = (int)o->shard_size;
    cfg->fit = !strcmp(o->fit, "stretch") ? DATASET_FIT_STRETCH : DATASET_FIT_CROP;
    return 0;
}

/* After a commit: splits when asked, then prints the dataset. 0, or 1 after a message. */
static int after_pack(const dataset_opts *o) {
    if ((o->val > 0 || o->test > 0) && dataset_assign_splits(o->out, o->val, o->test, (uint64_t)o->seed, o->reassign))
        return cli_error("dataset", "%s (the pairs were added; split later with --split)", nn_last_error());
    dataset *d = dataset_open(o->out, 0);
    if (!d) return cli_error("dataset", "%s", nn_last_error());
    print_info(d);
    dataset_close(d);
    return 0;
}

static void video_progress(void *ctx, const movie_stats *st) {
    fprintf(stderr, "\rpacking %s: %ld frames decoded, %ld pairs   ", (const char *)ctx, st->decoded, st->kept);
}

/* --from-video: every movie's layout first (nothing is written when one is refused),
 * then each movie as one source. */
static int cmd_pack_video(const dataset_opts *o) {
    dataset_pack_config cfg;
    int rc = pack_config(o, &cfg);
    if (rc) return rc;
    const int n = o->from_video.n;
    if (o->sources.n && o->sources.n != n)
        return cli_error("dataset", "%d --source names for %d --from-video files (give one per file, in order)",
                         o->sources.n, n), 2;
    movie_options mo = movie_options_default();
    mo.every = o->every, mo.fps = o->fps, mo.min_change = o->min_change;
    char(*names)[256] = calloc(CLI_MAX_LIST, sizeof *names);
    ff_media *media = calloc(CLI_MAX_LIST, sizeof *media);
    movie_layout *lay = calloc(CLI_MAX_LIST, sizeof *lay);
    if (!names || !media || !lay) {
        free(names), free(media), free(lay);
        return cli_error("dataset", "out of memory");
    }
    rc = 1;
    for (int i = 0; i < n; i++) {
        const char *path = o->from_video.items[i];
        if (o->sources.n) snprintf(names[i], sizeof names[i], "%s", o->sources.items[i]);
        else folder_name(path, names[i], sizeof names[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                rc = cli_error("dataset", "two files would both be source '%s' (%s and %s): name them with --source",
                               names[i], o->from_video.items[j], path) + 1;
                goto done;
            }
    }
    for (int i = 0; i < n; i++) {
        const char *path = o->from_video.items[i];
        if (movie_probe(path, &media[i]) || movie_detect_layout(path, &media[i], o->layout, &lay[i])) {
            cli_error("dataset", "%s", nn_last_error());
            goto done;
        }
        printf("%s: layout %s\n", path, lay[i].why);
        fflush(stdout);
    }
    dataset_writer *w = dataset_writer_open(o->out, &cfg);
    if (!w) {
        cli_error("dataset", "%s", nn_last_error());
        goto done;
    }
    if (refuse_existing_sources(w, names, n, o->out)) goto done;
    const int tty = cli_is_tty();
    double t0 = deep3d_now();
    for (int i = 0; i < n; i++) {
        const char *path = o->from_video.items[i];
        movie_stats st;
        if (dataset_writer_begin_source(w, names[i]) ||
            movie_pack(w, path, &media[i], &lay[i], &mo, &st, tty ? video_progress : NULL, names[i])) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", nn_last_error());
            dataset_writer_abort(w);
            if (tty) fputc('\n', stderr);
            cli_error("dataset", "%s (nothing was added to %s)", msg, o->out);
            goto done;
        }
        char sel[64];
        if (mo.fps > 0) snprintf(sel, sizeof sel, "%g per second", mo.fps);
        else snprintf(sel, sizeof sel, "every %ld", mo.every);
        printf("%s%s: %ld pairs from %s: %ld frames decoded, %ld chosen (%s), skipped %ld near-duplicates, %ld next "
               "to one of %ld scene cuts, %ld black",
               tty ? "\r" : "", names[i], st.kept, path, st.decoded, st.candidates, sel, st.duplicates, st.near_cuts,
               st.cuts, st.black);
        if (st.letterboxed)
            printf("; letterbox cropped from %ld pairs (last: %dx%d at %d,%d of %dx%d views)", st.letterboxed, st.box.w,
                   st.box.h, st.box.x0, st.box.y0, st.view_w, st.view_h);
        printf("\n");
        fflush(stdout);
    }
    long added = dataset_writer_pairs(w);
    const dataset_pack_config done_cfg = *dataset_writer_config(w);
    if (dataset_writer_commit(w)) {
        cli_error("dataset", "%s (nothing was added to %s)", nn_last_error(), o->out);
        goto done;
    }
    printf("packed %ld pairs of %d movie%s into %s (%dx%d %s, %.1f s)\n", added, n, n == 1 ? "" : "s", o->out,
           done_cfg.width, done_cfg.height, done_cfg.codec == IMAGE_PNG ? "png" : "jpg", deep3d_now() - t0);
    rc = after_pack(o);
done:
    free(names), free(media), free(lay);
    return rc;
}

static int cmd_pack(const dataset_opts *o) {
    dataset_pack_config cfg;
    int bad = pack_config(o, &cfg);
    if (bad) return bad;
    if (o->sources.n && o->sources.n != o->from_pairs.n)
        return cli_error("dataset", "%d --source names for %d --from-pairs folders (give one per folder, in order)",
                         o->sources.n, o->from_pairs.n), 2;
    char names[CLI_MAX_LIST][256];
    for (int i = 0; i < o->from_pairs.n; i++) {
        if (o->sources.n) snprintf(names[i], sizeof names[i], "%s", o->sources.items[i]);
        else folder_name(o->from_pairs.items[i], names[i], sizeof names[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j]))
                return cli_error("dataset", "two folders would both be source '%s' (%s and %s): name them with "
                                            "--source", names[i], o->from_pairs.items[j], o->from_pairs.items[i]), 2;
    }
    /* list every folder before writing anything */
    stereo_dataset *lists[CLI_MAX_LIST] = {0};
    int rc = 1;
    for (int i = 0; i < o->from_pairs.n; i++)
        if (!(lists[i] = stereo_dataset_open(&o->from_pairs.items[i], 1, o->layout))) {
            cli_error("dataset", "%s", nn_last_error());
            goto done;
        }
    dataset_writer *w = dataset_writer_open(o->out, &cfg);
    if (!w) {
        cli_error("dataset", "%s", nn_last_error());
        goto done;
    }
    if (refuse_existing_sources(w, names, o->from_pairs.n, o->out)) goto done;
    const int tty = cli_is_tty();
    const dataset_pack_config *wc = dataset_writer_config(w);
    long skipped = 0;
    double t0 = deep3d_now();
    for (int i = 0; i < o->from_pairs.n; i++) {
        long before = dataset_writer_pairs(w), skipped_before = skipped;
        if (pack_source(w, lists[i], names[i], &skipped, tty)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", nn_last_error());
            dataset_writer_abort(w);
            cli_error("dataset", "%s (nothing was added to %s)", msg, o->out);
            goto done;
        }
        printf("%s%s: %ld pairs from %s%s", tty ? "\r" : "", names[i], dataset_writer_pairs(w) - before,
               o->from_pairs.items[i], skipped > skipped_before ? "" : "\n");
        if (skipped > skipped_before) printf(", %ld unreadable skipped\n", skipped - skipped_before);
        fflush(stdout);
    }
    long added = dataset_writer_pairs(w);
    const dataset_pack_config done_cfg = *wc;
    wc = &done_cfg; /* w is freed by the commit */
    if (dataset_writer_commit(w)) {
        cli_error("dataset", "%s (nothing was added to %s)", nn_last_error(), o->out);
        goto done;
    }
    printf("packed %ld pairs of %d source%s into %s (%dx%d %s, %.1f s)\n", added, o->from_pairs.n,
           o->from_pairs.n == 1 ? "" : "s", o->out, wc->width, wc->height, wc->codec == IMAGE_PNG ? "png" : "jpg",
           deep3d_now() - t0);
    rc = after_pack(o);
done:
    for (int i = 0; i < o->from_pairs.n; i++) stereo_dataset_free(lists[i]);
    return rc;
}

int cmd_dataset(int argc, char **argv) {
    dataset_opts o = {.format = "jpg", .every = 0, .fps = 0, .min_change = MOVIE_MIN_CHANGE, .fit = "crop", .quality = 90, .shard_size = 1000, .seed = 1};
    const cli_option opts[] = {
        {"from-pairs", CLI_LIST, &o.from_pairs, "DIR", "pack this folder of pairs as one source (repeatable; layouts in data/README.md)", 0, 0, NULL},
        {"from-video", CLI_LIST, &o.from_video, "FILE", "pack this 3D movie (side by side or over-under) as one source (repeatable; decoded by ffmpeg)", 0, 0, NULL},
        {"out", CLI_STRING, &o.out, "DIR", "the dataset to create or append to (--from-pairs, --from-video)", 0, 0, NULL},
        {"layout", CLI_STRING, &o.layout, "NAME", "pairs (default for --from-pairs), auto (default for --from-video: metadata, else the picture), sbs, sbs-half, ou or ou-half", 0, 0, "auto|pairs|sbs|sbs-half|ou|ou-half"},
        {"every", CLI_INT, &o.every, "N", "--from-video: consider every N-th decoded frame (default: 1, every frame)", 1, 1e9, NULL},
        {"fps", CLI_DOUBLE, &o.fps, "X", "--from-video: consider X frames per second of movie time instead", 1e-6, 1e6, NULL},
        {"min-change", CLI_DOUBLE, &o.min_change, "L", "--from-video: a frame whose mean luma differs from the last kept one by less (0..255) is a near-duplicate, skipped (default: 1.5; 0 keeps all)", 0, 255, NULL},
        {"source", CLI_LIST, &o.sources, "NAME", "source name of each --from-pairs folder or --from-video file, in order (default: its file name)", 0, 0, NULL},
        {"size", CLI_STRING, &o.size, "WxH", "size of the stored views (default: 432x180, the paper's; appending: the dataset's)", 0, 0, NULL},
        {"fit", CLI_STRING, &o.fit, "HOW", "crop (default: largest centred crop of that aspect) or stretch", 0, 0, "crop|stretch"},
        {"format", CLI_STRING, &o.format, "FMT", "jpg (default) or png (lossless)", 0, 0, "jpg|png"},
        {"quality", CLI_INT, &o.quality, "Q", "JPEG quality (default: 90)", 1, 100, NULL},
        {"shard-size", CLI_INT, &o.shard_size, "N", "pairs per shard file (default: 1000; a shard also closes at 256 MiB)", 1, 1e7, NULL},
        {"split", CLI_STRING, &o.split, "DIR", "assign whole sources of DIR to train/val/test (with --val, --test)", 0, 0, NULL},
        {"val", CLI_DOUBLE, &o.val, "F", "share of the pairs for validation, by whole sources (default: 0)", 0, 0.99, NULL},
        {"test", CLI_DOUBLE, &o.test, "F", "share of the pairs for testing, by whole sources (default: 0)", 0, 0.99, NULL},
        {"seed", CLI_INT, &o.seed, "N", "seed of the split's source order (default: 1)", 0, 2e9, NULL},
        {"reassign", CLI_FLAG, &o.reassign, NULL, "split every source anew (default: keep earlier assignments)", 0, 0, NULL},
        {"info", CLI_STRING, &o.info, "DIR", "print the sources, splits and pair counts of a dataset", 0, 0, NULL},
        {"verify", CLI_STRING, &o.verify, "DIR", "check every record; name the bad ones, exit 1 if any", 0, 0, NULL},
        {"threads", CLI_INT, &o.threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {0},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse("dataset", "--from-pairs DIR [...] --out DIR | --from-video FILE [...] --out DIR | --split DIR --val F --test F | --info DIR | --verify DIR",
                       opts, argc, argv, pos, 0, &n_pos);
    if (rc) return rc > 0 ? 0 : 2;
    int actions = (o.from_pairs.n > 0) + (o.from_video.n > 0) + (o.split != NULL) + (o.info != NULL) + (o.verify != NULL);
    if (actions != 1)
        return cli_error("dataset", "give exactly one of --from-pairs, --from-video, --split, --info, --verify (see deep3d dataset --help)"), 2;
    if ((o.every || o.fps > 0) && !o.from_video.n)
        return cli_error("dataset", "--every and --fps apply to --from-video only"), 2;
    if (o.every && o.fps > 0) return cli_error("dataset", "give --every N or --fps X, not both"), 2;
    if (!o.every) o.every = 1;
    if (!o.layout) o.layout = o.from_video.n ? "auto" : "pairs";
    if (o.from_pairs.n && !strcmp(o.layout, "auto"))
        return cli_error("dataset", "--layout auto applies to --from-video only (folders: pairs, sbs, sbs-half, ou, ou-half)"), 2;
    if (o.from_video.n && !strcmp(o.layout, "pairs"))
        return cli_error("dataset", "--layout pairs does not apply to --from-video (auto, sbs, sbs-half, ou, ou-half)"), 2;
    if (o.val + o.test >= 1) return cli_error("dataset", "--val %g and --test %g leave nothing to train on", o.val, o.test), 2;
    deep3d_set_threads(o.threads);
    if (o.info) return cmd_info(o.info);
    if (o.verify) return cmd_verify(o.verify);
    if (o.split) {
        if (o.val <= 0 && o.test <= 0) return cli_error("dataset", "--split needs --val F and/or --test F"), 2;
        if (dataset_assign_splits(o.split, o.val, o.test, (uint64_t)o.seed, o.reassign))
            return cli_error("dataset", "%s", nn_last_error());
        dataset *d = dataset_open(o.split, 0);
        if (!d) return cli_error("dataset", "%s", nn_last_error());
        print_info(d);
        dataset_close(d);
        return 0;
    }
    if (!o.out) return cli_error("dataset", "%s needs --out DIR", o.from_video.n ? "--from-video" : "--from-pairs"), 2;
    return o.from_video.n ? cmd_pack_video(&o) : cmd_pack(&o);
}
