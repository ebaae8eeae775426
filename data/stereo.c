/* Stereo pair sources: folder listing and pair loading. See stereo.h. */
#include "stereo.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../nn/status.h"
#include "dataset.h"

/* Extensions stb_image decodes (its README: JPEG, PNG, TGA, BMP, PSD, GIF, HDR, PIC, PNM). */
static const char *const image_exts[] = {"png", "jpg", "jpeg", "bmp", "tga", "gif",
                                         "psd", "hdr", "pic", "ppm", "pgm", "pnm"};
#define N_EXTS (int)(sizeof image_exts / sizeof image_exts[0])
#define EXT_LIST "png, jpg, jpeg, bmp, tga, gif, psd, hdr, pic, ppm, pgm, pnm"

static const char *const layout_names[] = {"pairs", "sbs", "sbs-half", "ou", "ou-half", "packed"};

int stereo_layout_parse(const char *name, stereo_layout *out) {
    for (int i = 0; i < 5; i++)
        if (strcmp(name, layout_names[i]) == 0) {
            *out = (stereo_layout)i;
            return 0;
        }
    return nn_fail("stereo: unknown layout '%s' (expected pairs, sbs, sbs-half, ou or ou-half)",
                   name);
}

const char *stereo_layout_name(stereo_layout layout) {
    return (unsigned)layout <= STEREO_PACKED ? layout_names[layout] : "unknown";
}

/* The extension of a file name (after the last '.'), or NULL when it is not one of
 * image_exts (any letter case). */
static const char *image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return NULL;
    for (int i = 0; i < N_EXTS; i++)
        if (strcasecmp(dot + 1, image_exts[i]) == 0) return dot + 1;
    return NULL;
}

/* ---- string lists ---- */

typedef struct {
    char **s;
    int n, cap;
} strlist;

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    l->s = NULL, l->n = l->cap = 0;
}

static int strlist_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **p = realloc(l->s, (size_t)cap * sizeof *p);
        if (!p) return nn_fail("stereo: out of memory listing files");
        l->s = p, l->cap = cap;
    }
    if (!(l->s[l->n] = strdup(s))) return nn_fail("stereo: out of memory listing files");
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int strlist_has(const strlist *l, const char *s) {
    return l->n > 0 && bsearch(&s, l->s, (size_t)l->n, sizeof *l->s, cmp_str) != NULL;
}

/* Index of the first name >= s (the list is sorted). */
static int strlist_lower_bound(const strlist *l, const char *s) {
    int lo = 0, hi = l->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(l->s[mid], s) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* dir + "/" + name in a new string (NULL + nn_fail when out of memory). */
static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *s = malloc(a + (size_t)slash + b + 1);
    if (!s) {
        nn_fail("stereo: out of memory");
        return NULL;
    }
    memcpy(s, dir, a);
    if (slash) s[a] = '/';
    memcpy(s + a + (size_t)slash, name, b + 1);
    return s;
}

/* The image files (by extension) and the subfolders directly inside dir, each sorted. */
static int list_folder(const char *dir, strlist *files, strlist *folders) {
    DIR *d = opendir(dir);
    if (!d) return nn_fail("stereo: cannot open folder '%s': %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    errno = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *full = join(dir, e->d_name);
        if (!full) {
            rc = -1;
            break;
        }
        struct stat st;
        if (stat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                if (folders) rc = strlist_push(folders, e->d_name);
            } else if (image_ext(e->d_name)) {
                rc = strlist_push(files, e->d_name);
            }
        }
        free(full);
        errno = 0;
    }
    if (rc == 0 && errno != 0) rc = nn_fail("stereo: cannot read folder '%s': %s", dir, strerror(errno));
    closedir(d);
    if (rc != 0) return -1;
    if (files->n > 1) qsort(files->s, (size_t)files->n, sizeof *files->s, cmp_str);
    if (folders && folders->n > 1) qsort(folders->s, (size_t)folders->n, sizeof *folders->s, cmp_str);
    return 0;
}

/* ---- dataset ---- */

stereo_dataset *stereo_dataset_new(void) {
    stereo_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) nn_fail("stereo: out of memory");
    return ds;
}

static void item_free(stereo_item *it) {
    if (!it->pack) free(it->left), free(it->right); /* a record's name belongs to its pack */
    it->left = it->right = NULL;
}

void stereo_dataset_free(stereo_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) item_free(&ds->items[i]);
    for (int i = 0; i < ds->n_packs; i++) dataset_close(ds->packs[i]);
    free(ds->items), free(ds->packs);
    free(ds);
}

/* Room for one more item. */
static int grow_items(stereo_dataset *ds) {
    if (ds->n < ds->cap) return 0;
    int cap = ds->cap ? 2 * ds->cap : 64;
    stereo_item *p = realloc(ds->items, (size_t)cap * sizeof *p);
    if (!p) return nn_fail("stereo: out of memory");
    ds->items = p, ds->cap = cap;
    return 0;
}

void stereo_dataset_drop(stereo_dataset *ds, int i) {
    if (i < 0 || i >= ds->n) return;
    item_free(&ds->items[i]);
    memmove(ds->items + i, ds->items + i + 1, (size_t)(ds->n - i - 1) * sizeof *ds->items);
    ds->n--;
}

/* Appends one item, taking ownership of left and right (freed on failure). */
static int push_item(stereo_dataset *ds, char *left, char *right, stereo_layout layout) {
    if (!left || (layout == STEREO_PAIRS && !right)) {
        free(left), free(right);
        return -1; /* join() already failed */
    }
    if (grow_items(ds)) {
        free(left), free(right);
        return -1;
    }
    ds->items[ds->n++] = (stereo_item){left, right, layout, NULL, 0};
    return 0;
}

/* The records of the packed dataset dir (of split sel, or all) as items. */
static int add_packed(stereo_dataset *ds, const char *dir, dataset_split sel) {
    dataset **packs = realloc(ds->packs, (size_t)(ds->n_packs + 1) * sizeof *packs);
    if (!packs) return nn_fail("stereo: out of memory");
    ds->packs = packs;
    dataset *d = dataset_open(dir, 0);
    if (!d) return -1;
    int split_sources = 0;
    for (int s = 0; s < dataset_source_count(d); s++) split_sources += dataset_source(d, s)->split != SPLIT_NONE;
    int rc = -1, n0 = ds->n;
    if (sel == SPLIT_NONE && split_sources)
        nn_fail("stereo: dataset %s is split into train/val/test: name the part (%s:train, %s:val, %s:test or %s:all)",
                dir, dir, dir, dir, dir);
    else if (sel != SPLIT_NONE && sel != SPLIT_ALL && !split_sources)
        nn_fail("stereo: dataset %s has not been split (deep3d dataset --split %s --val F --test F)", dir, dir);
    else {
        rc = 0;
        for (long r = 0; r < dataset_record_count(d) && rc == 0; r++) {
            const dataset_record_info *ri = dataset_record(d, r);
            if (sel != SPLIT_NONE && sel != SPLIT_ALL && dataset_source(d, ri->source)->split != sel) continue;
            if (ds->n == 0x7fffffff) rc = nn_fail("stereo: dataset %s: more than 2^31 pairs", dir);
            else if (!(rc = grow_items(ds)))
                ds->items[ds->n++] = (stereo_item){(char *)ri->display, NULL, STEREO_PACKED, d, r};
        }
        if (rc == 0 && ds->n == n0)
            rc = sel == SPLIT_NONE || sel == SPLIT_ALL
                     ? nn_fail("stereo: dataset %s has no pairs", dir)
                     : nn_fail("stereo: dataset %s has no pairs in split '%s'", dir, dataset_split_name(sel));
    }
    if (rc) {
        ds->n = n0;
        dataset_close(d);
        return -1;
    }
    ds->packs[ds->n_packs++] = d;
    return 0;
}

/* Splits "<id>_L.<ext>" into id length and side ('L' or 'R'); 0 when not that pattern. */
static int pair_side(const char *name, size_t *id_len) {
    const char *ext = image_ext(name);
    if (!ext) return 0;
    size_t base = (size_t)(ext - 1 - name);
    if (base < 3 || name[base - 2] != '_') return 0; /* need a non-empty id */
    char side = name[base - 1];
    if (side != 'L' && side != 'R') return 0;
    *id_len = base - 2;
    return side;
}

/* Finds the partner of files->s[i] (side 'L' or 'R', id of id_len characters): the
 * same id with the other side, the same extension first, else any image extension.
 * Returns its index or -1. */
static int find_partner(const strlist *files, int i, size_t id_len, char other) {
    const char *name = files->s[i];
    size_t len = strlen(name);
    char *want = malloc(len + 1);
    if (!want) return -1;
    memcpy(want, name, len + 1);
    want[id_len + 1] = other;
    int found = -1;
    if (strlist_has(files, want)) {
        found = strlist_lower_bound(files, want);
    } else {
        want[id_len + 2] = '.', want[id_len + 3] = '\0'; /* prefix "<id>_X." */
        size_t plen = id_len + 3;
        for (int j = strlist_lower_bound(files, want); j < files->n; j++) {
            if (strncmp(files->s[j], want, plen) != 0) break;
            const char *e = image_ext(files->s[j]);
            if (e && e == files->s[j] + plen) {
                found = j;
                break;
            }
        }
    }
    free(want);
    return found;
}

/* The <id>_L / <id>_R files of one folder. */
static int add_lr_files(stereo_dataset *ds, const char *dir, const strlist *files) {
    for (int i = 0; i < files->n; i++) {
        size_t id_len;
        int side = pair_side(files->s[i], &id_len);
        if (!side) continue;
        char other = side == 'L' ? 'R' : 'L';
        int j = find_partner(files, i, id_len, other);
        if (j < 0) {
            char *path = join(dir, files->s[i]);
            nn_fail("stereo: '%s' has no %s view (looked for '%.*s_%c.<ext>' in '%s')",
                    path ? path : files->s[i], side == 'L' ? "right" : "left", (int)id_len,
                    files->s[i], other, dir);
            free(path);
            return -1;
        }
        if (side == 'L' && push_item(ds, join(dir, files->s[i]), join(dir, files->s[j]), STEREO_PAIRS))
            return -1;
    }
    return 0;
}

/* The left/ and right/ subfolders of one folder: files of equal names. */
static int add_left_right_folders(stereo_dataset *ds, const char *dir) {
    char *ldir = join(dir, "left"), *rdir = join(dir, "right");
    strlist lf = {0}, rf = {0};
    int rc = -1;
    if (!ldir || !rdir) goto done;
    if (list_folder(ldir, &lf, NULL) || list_folder(rdir, &rf, NULL)) goto done;
    for (int pass = 0; pass < 2; pass++) {
        const strlist *a = pass ? &rf : &lf, *b = pass ? &lf : &rf;
        for (int i = 0; i < a->n; i++) {
            if (strlist_has(b, a->s[i])) continue;
            char *p = join(pass ? rdir : ldir, a->s[i]), *q = join(pass ? ldir : rdir, a->s[i]);
            nn_fail("stereo: '%s' has no %s view (looked for '%s')", p ? p : a->s[i],
                    pass ? "left" : "right", q ? q : a->s[i]);
            free(p), free(q);
            goto done;
        }
    }
    for (int i = 0; i < lf.n; i++)
        if (push_item(ds, join(ldir, lf.s[i]), join(rdir, lf.s[i]), STEREO_PAIRS)) goto done;
    rc = 0;
done:
    strlist_free(&lf), strlist_free(&rf);
    free(ldir), free(rdir);
    return rc;
}

int stereo_dataset_add(stereo_dataset *ds, const char *path, stereo_layout layout) {
    if ((unsigned)layout >= STEREO_PACKED) return nn_fail("stereo: bad layout %d for '%s'", (int)layout, path);
    char *dir = NULL;
    dataset_split sel;
    int packed = dataset_parse_ref(path, &dir, &sel);
    if (packed != 0) {
        int r = packed < 0 ? -1 : add_packed(ds, dir, sel);
        free(dir);
        return r;
    }
    free(dir);
    int n0 = ds->n, rc = -1;
    strlist files = {0}, folders = {0};

    if (layout != STEREO_PAIRS) {
        struct stat st;
        if (stat(path, &st) != 0)
            return nn_fail("stereo: cannot open '%s': %s", path, strerror(errno));
        if (!S_ISDIR(st.st_mode)) { /* one frame file */
            char *p = strdup(path);
            if (!p) return nn_fail("stereo: out of memory");
            return push_item(ds, p, NULL, layout);
        }
        if (list_folder(path, &files, NULL)) goto done;
        for (int i = 0; i < files.n; i++)
            if (push_item(ds, join(path, files.s[i]), NULL, layout)) goto done;
        if (ds->n == n0) {
            nn_fail("stereo: no frames in '%s' for layout %s (looked for image files: " EXT_LIST ")",
                    path, stereo_layout_name(layout));
            goto done;
        }
        rc = 0;
        goto done;
    }

    if (list_folder(path, &files, &folders)) goto done;
    if (add_lr_files(ds, path, &files)) goto done;
    int has_left = strlist_has(&folders, "left"), has_right = strlist_has(&folders, "right");
    if (has_left != has_right) {
        nn_fail("stereo: '%s' has a %s/ subfolder but no %s/ subfolder", path,
                has_left ? "left" : "right", has_left ? "right" : "left");
        goto done;
    }
    if (has_left && add_left_right_folders(ds, path)) goto done;
    if (ds->n == n0) {
        nn_fail("stereo: no stereo pairs in '%s' (looked for <id>_L.<ext> + <id>_R.<ext> files "
                "and left/ + right/ subfolders of equal file names, <ext> one of " EXT_LIST
                "; single side-by-side or over-under frames need a layout: sbs, sbs-half, ou, "
                "ou-half)",
                path);
        goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        while (ds->n > n0) item_free(&ds->items[--ds->n]);
    strlist_free(&files), strlist_free(&folders);
    return rc;
}

int stereo_split_frame(const image *frame, stereo_layout layout, const char *name, image **left,
                       image **right) {
    *left = *right = NULL;
    if (!name) name = "frame";
    int sbs = layout == STEREO_SBS || layout == STEREO_SBS_HALF;
    int half = layout == STEREO_SBS_HALF || layout == STEREO_OU_HALF;
    if (!sbs && layout != STEREO_OU && layout != STEREO_OU_HALF)
        return nn_fail("stereo: '%s': layout %s is not a single-frame layout", name,
                       stereo_layout_name(layout));
    if (sbs && (frame->w % 2 != 0))
        return nn_fail("stereo: side-by-side frame '%s' has an odd width %d", name, frame->w);
    if (!sbs && (frame->h % 2 != 0))
        return nn_fail("stereo: over-under frame '%s' has an odd height %d", name, frame->h);
    int vw = sbs ? frame->w / 2 : frame->w, vh = sbs ? frame->h : frame->h / 2;
    image *l = image_crop(frame, 0, 0, vw, vh);
    image *r = l ? image_crop(frame, sbs ? vw : 0, sbs ? 0 : vh, vw, vh) : NULL;
    if (l && r && half) {
        image *l2 = image_resize(l, frame->w, frame->h);
        image *r2 = l2 ? image_resize(r, frame->w, frame->h) : NULL;
        image_free(l), image_free(r);
        l = l2, r = r2;
    }
    if (!l || !r) {
        image_free(l), image_free(r);
        return nn_fail_context("stereo: splitting '%s'", name);
    }
    *left = l, *right = r;
    return 0;
}

int stereo_load_pair(const stereo_dataset *ds, int i, image **left, image **right) {
    *left = *right = NULL;
    if (i < 0 || i >= ds->n) return nn_fail("stereo: pair %d out of range (%d pairs)", i, ds->n);
    const stereo_item *it = &ds->items[i];
    if (it->layout == STEREO_PACKED) return dataset_read_pair(it->pack, it->record, left, right);
    if (it->layout != STEREO_PAIRS) {
        image *frame = image_load(it->left);
        if (!frame) return -1;
        int rc = stereo_split_frame(frame, it->layout, it->left, left, right);
        image_free(frame);
        return rc;
    }
    image *l = image_load(it->left);
    if (!l) return -1;
    image *r = image_load(it->right);
    if (!r) {
        image_free(l);
        return -1;
    }
    if (l->w != r->w || l->h != r->h) {
        nn_fail("stereo: left view '%s' is %dx%d but right view '%s' is %dx%d", it->left, l->w,
                l->h, it->right, r->w, r->h);
        image_free(l), image_free(r);
        return -1;
    }
    *left = l, *right = r;
    return 0;
}

stereo_dataset *stereo_dataset_open(const char *const *paths, int n, const char *layout_name) {
    stereo_layout layout = STEREO_PAIRS;
    if (stereo_layout_parse(layout_name, &layout)) return NULL;
    stereo_dataset *ds = stereo_dataset_new();
    for (int i = 0; ds && i < n; i++)
        if (stereo_dataset_add(ds, paths[i], layout)) {
            stereo_dataset_free(ds);
            return NULL;
        }
    return ds;
}
