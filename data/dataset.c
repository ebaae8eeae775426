/* Packed stereo datasets: manifest, shard files, writer, reader, splits. See dataset.h
 * for the API and data/SHARDS.md for the bytes.
 *
 * Shard layout (all integers little-endian):
 *   header (64 bytes) | source table | index (48 bytes per record) | frame names | data
 * A record's CRC-32 covers its index entry's first 44 bytes, its frame name and both
 * views' bytes; the header's covers the header's first 60 bytes and the source table.
 */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../nn/status.h"
#include "../nn/weights.h"
#include "augment.h"

/* "\x89D3S\r\n\x1a\n": PNG's reasoning, as the weights file's magic (weights/FORMAT.md). */
static const unsigned char SHARD_MAGIC[8] = {0x89, 'D', '3', 'S', '\r', '\n', 0x1a, '\n'};
#define MANIFEST_MAGIC "deep3d-dataset"
#define TMP_PREFIX ".deep3d-" /* mkstemp names of files being written */

enum {
    HEADER_BYTES = 64,
    ENTRY_BYTES = 48,
    ENTRY_CRC_AT = 44,   /* the entry's CRC field; the CRC covers the bytes before it */
    HEADER_CRC_AT = 60,
    MAX_NAME = 255,
    MANIFEST_MAX = 64 << 20, /* bytes of manifest we are willing to read */
};
#define SHARD_MAX_DATA ((size_t)256 << 20) /* a shard is closed at this many image bytes */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    put_u32(p, (uint32_t)v), put_u32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }
static uint64_t round8(uint64_t x) { return (x + 7) / 8 * 8; }

static const char *const split_names[] = {"none", "train", "val", "test", "all"};

const char *dataset_split_name(dataset_split s) { return (unsigned)s <= SPLIT_ALL ? split_names[s] : "?"; }

/* The split named train, val, test or all; SPLIT_NONE for any other name. */
static dataset_split split_lookup(const char *name) {
    for (int i = SPLIT_TRAIN; i <= SPLIT_ALL; i++)
        if (!strcmp(name, split_names[i])) return (dataset_split)i;
    return SPLIT_NONE;
}

int dataset_split_parse(const char *name, dataset_split *out) {
    if ((*out = split_lookup(name)) != SPLIT_NONE) return 0;
    return nn_fail("dataset: unknown split '%s' (expected train, val, test or all)", name);
}

dataset_pack_config dataset_pack_defaults(void) {
    return (dataset_pack_config){.width = 0, .height = 0, .codec = IMAGE_JPEG, .quality = 90,
                                 .fit = DATASET_FIT_CROP, .shard_pairs = 1000};
}

/* 1 if the n bytes are a valid name: at most MAX_NAME bytes, none a control character
 * (< 0x20 or 0x7f), so that a name fits one manifest line. */
static int valid_name(const char *s, size_t n) {
    if (n > MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) return 0;
    return 1;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

/* ---- growing byte buffers ---- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} bytes;

static int bytes_put(bytes *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return nn_fail("dataset: out of memory");
        b->p = p, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

static int bytes_printf(bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bytes_printf(bytes *b, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof line) return nn_fail("dataset: manifest line too long");
    return bytes_put(b, line, (size_t)k);
}

/* ---- atomic files and the folder lock ---- */

/* fsync of a folder, so that renames in it survive a power cut (best effort). */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int write_all(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

/* Writes the parts (n_parts buffers) to a new temporary file in dir, fsyncs it and
 * renames it to dir/name; fsyncs dir. On failure the temporary is removed and an
 * existing dir/name is untouched. */
static int atomic_write(const char *dir, const char *name, const void *const *parts, const size_t *sizes,
                        int n_parts) {
    char *tmp = path_join(dir, TMP_PREFIX "XXXXXX"), *dst = path_join(dir, name);
    if (!tmp || !dst) {
        free(tmp), free(dst);
        return nn_fail("dataset %s: out of memory", dir);
    }
    int fd = mkstemp(tmp), rc = -1;
    if (fd < 0) {
        nn_fail("dataset %s: cannot create a temporary file for %s: %s", dir, name, strerror(errno));
        goto done;
    }
    (void)fchmod(fd, 0644);
    for (int i = 0; i < n_parts; i++)
        if (write_all(fd, parts[i], sizes[i])) {
            nn_fail("dataset %s: writing %s: %s", dir, name, strerror(errno ? errno : EIO));
            goto fail;
        }
    if (fsync(fd)) {
        nn_fail("dataset %s: writing %s: %s", dir, name, strerror(errno));
        goto fail;
    }
    int c = close(fd);
    fd = -1;
    if (c || rename(tmp, dst)) {
        nn_fail("dataset %s: writing %s: %s", dir, name, strerror(errno));
        goto fail;
    }
    sync_dir(dir);
    rc = 0;
    goto done;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
done:
    free(tmp), free(dst);
    return rc;
}

/* Takes the folder's lock (flock on the folder itself): exclusive for writers. Returns
 * the descriptor holding it, or -1 + nn_fail. */
static int lock_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return nn_fail("dataset %s: cannot open the folder: %s", dir, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) return nn_fail("dataset %s is being written by another process", dir);
        return nn_fail("dataset %s: cannot lock the folder: %s", dir, strerror(e));
    }
    return fd;
}

/* 1 when another process holds the writer's lock on dir. */
static int being_written(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

/* ---- the manifest ---- */

typedef struct {
    char *file;
    long records;
    uint64_t bytes;
} mf_shard;

typedef struct {
    char *name;
    dataset_split split;
    long pairs;
} mf_source;

typedef struct {
    int width, height;
    mf_shard *shards;
    int n_shards, cap_shards;
    mf_source *sources;
    int n_sources, cap_sources;
} manifest;

static void mf_free(manifest *m) {
    for (int i = 0; i < m->n_shards; i++) free(m->shards[i].file);
    for (int i = 0; i < m->n_sources; i++) free(m->sources[i].name);
    free(m->shards), free(m->sources);
    memset(m, 0, sizeof *m);
}

static int mf_add_shard(manifest *m, const char *file, long records, uint64_t bytes_) {
    if (m->n_shards == m->cap_shards) {
        int cap = m->cap_shards ? 2 * m->cap_shards : 16;
        mf_shard *p = realloc(m->shards, (size_t)cap * sizeof *p);
        if (!p) return nn_fail("dataset: out of memory");
        m->shards = p, m->cap_shards = cap;
    }
    char *f = strdup(file);
    if (!f) return nn_fail("dataset: out of memory");
    m->shards[m->n_shards++] = (mf_shard){f, records, bytes_};
    return 0;
}

static int mf_add_source(manifest *m, const char *name, size_t len, dataset_split split, long pairs) {
    if (m->n_sources == m->cap_sources) {
        int cap = m->cap_sources ? 2 * m->cap_sources : 16;
        mf_source *p = realloc(m->sources, (size_t)cap * sizeof *p);
        if (!p) return nn_fail("dataset: out of memory");
        m->sources = p, m->cap_sources = cap;
    }
    char *s = strndup(name, len);
    if (!s) return nn_fail("dataset: out of memory");
    m->sources[m->n_sources++] = (mf_source){s, split, pairs};
    return 0;
}

static int mf_find_source(const manifest *m, const char *name, size_t len) {
    for (int i = 0; i < m->n_sources; i++)
        if (strlen(m->sources[i].name) == len && !memcmp(m->sources[i].name, name, len)) return i;
    return -1;
}

/* A shard file name as the writer makes it and the manifest may list: no '/', not
 * starting with '.', ending in ".d3s". */
static int valid_shard_file(const char *s, size_t n) {
    return n > 4 && n <= MAX_NAME && s[0] != '.' && !memchr(s, '/', n) && !memchr(s, ' ', n) &&
           !memcmp(s + n - 4, ".d3s", 4) && valid_name(s, n);
}

/* Parses the manifest text (n bytes) of dataset dir into m. */
static int mf_parse(const char *dir, const char *text, size_t n, manifest *m) {
    memset(m, 0, sizeof *m);
    const char *crc_line = NULL; /* the last line: "crc32 " + 8 hex digits + "\n" */
    if (n >= 15 && text[n - 1] == '\n') {
        crc_line = text + n - 1;
        while (crc_line > text && crc_line[-1] != '\n') crc_line--;
        if (text + n - crc_line != 15 || memcmp(crc_line, "crc32 ", 6)) crc_line = NULL;
    }
    size_t magic_len = strlen(MANIFEST_MAGIC);
    if (n < magic_len + 1 || memcmp(text, MANIFEST_MAGIC " ", magic_len + 1))
        return nn_fail("dataset %s: %s is not a deep3d dataset manifest (it does not start with '%s')", dir,
                       DATASET_MANIFEST, MANIFEST_MAGIC);
    unsigned version = (unsigned)strtoul(text + magic_len + 1, NULL, 10);
    if (version > DATASET_VERSION)
        return nn_fail("dataset %s has format version %u; this deep3d reads versions up to %d (a newer deep3d "
                       "wrote it)", dir, version, DATASET_VERSION);
    if (version == 0)
        return nn_fail("dataset %s: %s is corrupted: format version 0", dir, DATASET_MANIFEST);
    if (!crc_line)
        return nn_fail("dataset %s: %s is truncated or corrupted: it does not end with its crc32 line", dir,
                       DATASET_MANIFEST);
    size_t body = (size_t)(crc_line - text);
    char *end;
    unsigned long stored = strtoul(crc_line + 6, &end, 16);
    uint32_t computed = nn_crc32(0, text, body);
    if (end != text + n - 1 || stored != computed)
        return nn_fail("dataset %s: %s is corrupted: checksum mismatch (stored %.8s, computed %08x)", dir,
                       DATASET_MANIFEST, crc_line + 6, computed);
    /* from here on the text is what a writer wrote: errors mean a faulty writer */
    int line_no = 0;
    for (size_t i = 0; i < body;) {
        const char *line = text + i, *nl = memchr(line, '\n', body - i);
        size_t len = (size_t)(nl - line);
        i += len + 1;
        line_no++;
        if (line_no == 1) continue; /* the magic line, checked above */
        char word[16] = "";
        int w = 0;
        while (w < (int)len && w < 15 && line[w] != ' ') word[w] = line[w], w++;
        word[w] = '\0';
        const char *rest = line + w + 1;
        size_t rlen = len > (size_t)w ? len - (size_t)w - 1 : 0;
        char buf[600];
        snprintf(buf, sizeof buf, "%.*s", (int)(rlen < 590 ? rlen : 590), rest);
        int ok = 0;
        if (!strcmp(word, "size")) {
            int a = 0, b = 0, k = 0;
            ok = sscanf(buf, "%dx%d%n", &a, &b, &k) == 2 && k == (int)rlen && a > 0 && b > 0 && a <= 65535 &&
                 b <= 65535;
            m->width = a, m->height = b;
        } else if (!strcmp(word, "shard")) {
            char file[300];
            long recs = -1;
            unsigned long long by = 0;
            int k = 0;
            ok = sscanf(buf, "%299s %ld %llu%n", file, &recs, &by, &k) == 3 && k == (int)rlen && recs >= 0 &&
                 valid_shard_file(file, strlen(file));
            if (ok && mf_add_shard(m, file, recs, by)) return -1;
        } else if (!strcmp(word, "source")) {
            char split[8];
            long pairs = -1;
            int k = 0;
            dataset_split sp = SPLIT_NONE;
            ok = sscanf(buf, "%7s %ld %n", split, &pairs, &k) == 2 && k > 0 && (size_t)k < rlen && pairs >= 0;
            if (ok) sp = split_lookup(split), ok = sp != SPLIT_ALL && (sp != SPLIT_NONE || !strcmp(split, "none"));
            if (ok) ok = valid_name(rest + k, rlen - (size_t)k) && mf_find_source(m, rest + k, rlen - (size_t)k) < 0;
            if (ok && mf_add_source(m, rest + k, rlen - (size_t)k, sp, pairs)) return -1;
        }
        if (!ok) {
            mf_free(m);
            return nn_fail("dataset %s: %s is corrupted: line %d ('%.60s') is not a size, shard or source line "
                           "of this format", dir, DATASET_MANIFEST, line_no, buf);
        }
    }
    if (m->width <= 0) {
        mf_free(m);
        return nn_fail("dataset %s: %s is corrupted: it has no size line", dir, DATASET_MANIFEST);
    }
    return 0;
}

/* Reads and parses dir/manifest.d3d. */
static int mf_load(const char *dir, manifest *m) {
    memset(m, 0, sizeof *m);
    char *path = path_join(dir, DATASET_MANIFEST);
    if (!path) return nn_fail("dataset %s: out of memory", dir);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f) return nn_fail("dataset %s: cannot open %s: %s", dir, DATASET_MANIFEST, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size > MANIFEST_MAX) {
        fclose(f);
        return nn_fail("dataset %s: %s is not a manifest (%s)", dir, DATASET_MANIFEST,
                       st.st_size > MANIFEST_MAX ? "larger than 64 MiB" : strerror(errno));
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    int err = !text || ferror(f);
    fclose(f);
    int rc = err ? nn_fail("dataset %s: cannot read %s", dir, DATASET_MANIFEST) : mf_parse(dir, text, n, m);
    free(text);
    return rc;
}

/* Writes m as dir/manifest.d3d, atomically. */
static int mf_save(const char *dir, const manifest *m) {
    bytes b = {0};
    int rc = bytes_printf(&b, "%s %d\nsize %dx%d\n", MANIFEST_MAGIC, DATASET_VERSION, m->width, m->height);
    for (int i = 0; i < m->n_shards && !rc; i++)
        rc = bytes_printf(&b, "shard %s %ld %llu\n", m->shards[i].file, m->shards[i].records,
                          (unsigned long long)m->shards[i].bytes);
    for (int i = 0; i < m->n_sources && !rc; i++)
        rc = bytes_printf(&b, "source %s %ld %s\n", dataset_split_name(m->sources[i].split), m->sources[i].pairs,
                          m->sources[i].name);
    if (!rc) rc = bytes_printf(&b, "crc32 %08x\n", nn_crc32(0, b.p, b.n));
    if (!rc) {
        const void *parts[1] = {b.p};
        size_t sizes[1] = {b.n};
        rc = atomic_write(dir, DATASET_MANIFEST, parts, sizes, 1);
    }
    free(b.p);
    return rc;
}

/* ---- folder scan: what is there besides the listed shards ---- */

/* Finds, in dir, shard files m does not list and temporaries of an interrupted write.
 * Returns how many; the first few names go to list (size bytes). *max_no receives the
 * largest N of any "shard-N.d3s" present or listed (-1 when none). */
static int scan_unlisted(const char *dir, const manifest *m, char *list, size_t size, long *max_no) {
    *max_no = -1;
    if (size) list[0] = '\0';
    for (int i = 0; i < m->n_shards; i++) {
        long no;
        if (sscanf(m->shards[i].file, "shard-%ld.d3s", &no) == 1 && no > *max_no) *max_no = no;
    }
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    size_t used = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *s = e->d_name;
        size_t n = strlen(s);
        long no;
        if (sscanf(s, "shard-%ld.d3s", &no) == 1 && no > *max_no) *max_no = no;
        int tmp = !strncmp(s, TMP_PREFIX, strlen(TMP_PREFIX));
        int shard = n > 4 && !strcmp(s + n - 4, ".d3s");
        if (!tmp && !shard) continue;
        int listed = 0;
        for (int i = 0; shard && !tmp && i < m->n_shards && !listed; i++) listed = !strcmp(m->shards[i].file, s);
        if (listed) continue;
        if (count < 4 && used < size) used += (size_t)snprintf(list + used, size - used, "%s%s", count ? ", " : "", s);
        count++;
    }
    closedir(d);
    return count;
}

/* ---- reading ---- */

typedef struct {
    dataset_record_info info;
    uint64_t offset;              /* of the left view's bytes */
    uint32_t left, right, crc;    /* byte counts, stored CRC */
    uint32_t local_source;        /* as stored (the CRC covers the raw entry) */
    uint32_t name_offset, name_bytes;
    unsigned char reserved[12];   /* entry bytes 32..43 as stored */
    const char *bad;              /* why the entry cannot be read, NULL when it can */
} record;

typedef struct {
    dataset_shard_info info;
    char *path;
    char *problem;
    unsigned char *head; /* bytes [0, data_offset): header, source table, index, names */
    uint64_t names_at, data_at, actual_bytes;
} shard;

struct dataset {
    char *dir;
    manifest mf;
    dataset_source_info *sources; /* (mf.n_sources) */
    shard *shards;                /* (n_shards) */
    int n_shards;
    record *recs;
    long n_recs, cap_recs;
    char **pools; /* display strings, one block per shard */
    int n_pools;
    char *unlisted; /* lenient opens: the half-written message, or NULL */
};

int dataset_is_packed(const char *dir) {
    struct stat st;
    char *p = path_join(dir, DATASET_MANIFEST);
    int found = p && stat(p, &st) == 0;
    free(p);
    if (found) return 1;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        found = n > 10 && !strncmp(e->d_name, "shard-", 6) && !strcmp(e->d_name + n - 4, ".d3s");
    }
    closedir(d);
    return found;
}

int dataset_parse_ref(const char *arg, char **dir, dataset_split *split) {
    *split = SPLIT_NONE;
    struct stat st;
    const char *colon = strrchr(arg, ':');
    if (stat(arg, &st) != 0 && colon && colon != arg) {
        dataset_split s = split_lookup(colon + 1);
        char *prefix = strndup(arg, (size_t)(colon - arg));
        if (!prefix) return nn_fail("dataset: out of memory");
        if (s != SPLIT_NONE && dataset_is_packed(prefix)) {
            *dir = prefix, *split = s;
            return 1;
        }
        free(prefix);
    }
    if (!(*dir = strdup(arg))) return nn_fail("dataset: out of memory");
    return dataset_is_packed(arg);
}

static int shard_problem(shard *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int shard_problem(shard *s, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(s->problem);
    s->problem = strdup(buf);
    s->info.problem = s->problem ? s->problem : "damaged";
    return -1;
}

static int push_record(dataset *d, const record *r) {
    if (d->n_recs == d->cap_recs) {
        long cap = d->cap_recs ? 2 * d->cap_recs : 1024;
        record *p = realloc(d->recs, (size_t)cap * sizeof *p);
        if (!p) return nn_fail("dataset %s: out of memory for %ld records", d->dir, cap);
        d->recs = p, d->cap_recs = cap;
    }
    d->recs[d->n_recs++] = *r;
    return 0;
}

/* Reads shard k's header, source table, index and names, appends its records.
 * Returns 0; -1 with s->problem set when the shard cannot be indexed (damage), or -1
 * + nn_fail without s->problem on out of memory. */
static int read_shard(dataset *d, int k) {
    shard *s = &d->shards[k];
    const mf_shard *ms = &d->mf.shards[k];
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return shard_problem(s, "%s cannot be opened: %s", ms->file, strerror(errno));
    struct stat st;
    unsigned char h[HEADER_BYTES];
    int rc = -1;
    if (fstat(fd, &st)) {
        shard_problem(s, "%s cannot be read: %s", ms->file, strerror(errno));
        goto done;
    }
    s->actual_bytes = (uint64_t)st.st_size;
    if (s->actual_bytes < ms->bytes)
        shard_problem(s, "%s is truncated: %llu of %llu bytes", ms->file, (unsigned long long)s->actual_bytes,
                      (unsigned long long)ms->bytes);
    else if (s->actual_bytes > ms->bytes)
        shard_problem(s, "%s is corrupted: %llu bytes, the manifest says %llu", ms->file,
                      (unsigned long long)s->actual_bytes, (unsigned long long)ms->bytes);
    ssize_t got = pread(fd, h, HEADER_BYTES, 0);
    if (got < (ssize_t)sizeof SHARD_MAGIC || memcmp(h, SHARD_MAGIC, sizeof SHARD_MAGIC)) {
        shard_problem(s, "%s is not a deep3d shard (wrong magic bytes)%s", ms->file,
                      got < HEADER_BYTES ? " or is truncated" : "");
        goto done;
    }
    if (get_u32(h + 8) > DATASET_VERSION || get_u32(h + 8) == 0) {
        shard_problem(s, "%s has format version %u; this deep3d reads versions up to %d", ms->file, get_u32(h + 8),
                      DATASET_VERSION);
        goto done;
    }
    if (got < HEADER_BYTES) {
        shard_problem(s, "%s is truncated: %llu bytes, its header alone is %d", ms->file,
                      (unsigned long long)s->actual_bytes, HEADER_BYTES);
        goto done;
    }
    uint32_t codec = get_u32(h + 12), w = get_u32(h + 16), hh = get_u32(h + 20);
    uint32_t n_src = get_u32(h + 24), n = get_u32(h + 28);
    uint64_t index_at = get_u64(h + 32), data_at = get_u64(h + 40), file_bytes = get_u64(h + 48);
    uint64_t names_at = index_at + (uint64_t)ENTRY_BYTES * n;
    if (index_at < HEADER_BYTES || index_at > file_bytes || n > file_bytes / ENTRY_BYTES || names_at > data_at ||
        data_at > file_bytes || data_at > ((uint64_t)1 << 32)) {
        shard_problem(s, "%s is corrupted: its header's offsets do not fit", ms->file);
        goto done;
    }
    if (data_at > s->actual_bytes) {
        shard_problem(s, "%s is truncated: %llu of %llu bytes, inside its index", ms->file,
                      (unsigned long long)s->actual_bytes, (unsigned long long)file_bytes);
        goto done;
    }
    if (!(s->head = malloc((size_t)data_at))) {
        nn_fail("dataset %s: out of memory for the index of %s", d->dir, ms->file);
        goto done;
    }
    memcpy(s->head, h, HEADER_BYTES);
    size_t want = (size_t)data_at - HEADER_BYTES;
    if (want && pread(fd, s->head + HEADER_BYTES, want, HEADER_BYTES) != (ssize_t)want) {
        shard_problem(s, "%s cannot be read: %s", ms->file, strerror(errno ? errno : EIO));
        goto done;
    }
    uint32_t crc = nn_crc32(nn_crc32(0, h, HEADER_CRC_AT), s->head + HEADER_BYTES, (size_t)index_at - HEADER_BYTES);
    if (crc != get_u32(h + HEADER_CRC_AT)) {
        shard_problem(s, "%s is corrupted: header checksum mismatch (stored 0x%08x, computed 0x%08x)", ms->file,
                      get_u32(h + HEADER_CRC_AT), crc);
        goto done;
    }
    /* From here the header and source table are what a writer wrote. */
    if (file_bytes != ms->bytes || n != (uint64_t)ms->records) {
        shard_problem(s, "%s does not match the manifest: %u records in %llu bytes, the manifest says %ld in %llu",
                      ms->file, n, (unsigned long long)file_bytes, ms->records, (unsigned long long)ms->bytes);
        goto done;
    }
    if ((int)w != d->mf.width || (int)hh != d->mf.height || codec > IMAGE_PNG) {
        shard_problem(s, "%s holds %ux%u views (codec %u), the dataset is %dx%d", ms->file, w, hh, codec,
                      d->mf.width, d->mf.height);
        goto done;
    }
    if (n > 0 && n_src == 0) {
        shard_problem(s, "%s is corrupted: it holds records but no sources", ms->file);
        goto done;
    }
    s->info.codec = (image_codec)codec;
    int *global = calloc(n_src ? n_src : 1, sizeof *global);
    const char **src_names = calloc(n_src ? n_src : 1, sizeof *src_names);
    if (!global || !src_names) {
        free(global), free(src_names);
        nn_fail("dataset %s: out of memory", d->dir);
        goto done;
    }
    uint64_t pos = HEADER_BYTES;
    int bad_table = 0;
    for (uint32_t j = 0; j < n_src && !bad_table; j++) {
        uint32_t len = pos + 4 <= index_at ? get_u32(s->head + pos) : (uint32_t)-1;
        if (len == 0 || len > MAX_NAME || pos + 4 + len > index_at) {
            bad_table = 1;
            break;
        }
        global[j] = mf_find_source(&d->mf, (const char *)s->head + pos + 4, len);
        src_names[j] = d->mf.sources[global[j] >= 0 ? global[j] : 0].name;
        if (global[j] < 0) bad_table = 2;
        pos += round8(4 + (uint64_t)len);
    }
    if (bad_table) {
        free(global), free(src_names);
        shard_problem(s, bad_table == 1 ? "%s is corrupted: its source table does not fit"
                                        : "%s holds a source that the manifest does not list",
                      ms->file);
        goto done;
    }
    /* display strings "<source>/<frame name or number>": one block for the shard */
    size_t pool_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = s->head + index_at + (uint64_t)ENTRY_BYTES * i;
        uint32_t src = get_u32(e + 24), nb = get_u32(e + 32);
        pool_bytes += (src < n_src ? strlen(src_names[src]) : 16) + (nb <= MAX_NAME ? nb : 0) + 24;
    }
    char *pool = malloc(pool_bytes ? pool_bytes : 1);
    char **pools = realloc(d->pools, (size_t)(d->n_pools + 1) * sizeof *pools);
    if (!pool || !pools) {
        free(pool), free(global), free(src_names);
        if (pools) d->pools = pools;
        nn_fail("dataset %s: out of memory", d->dir);
        goto done;
    }
    d->pools = pools, d->pools[d->n_pools++] = pool;
    size_t used = 0;
    rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const unsigned char *e = s->head + index_at + (uint64_t)ENTRY_BYTES * i;
        record r = {0};
        r.offset = get_u64(e), r.left = get_u32(e + 8), r.right = get_u32(e + 12);
        r.info.frame = get_u64(e + 16), r.local_source = get_u32(e + 24);
        r.name_offset = get_u32(e + 28), r.name_bytes = get_u32(e + 32);
        memcpy(r.reserved, e + 32, sizeof r.reserved);
        r.crc = get_u32(e + ENTRY_CRC_AT);
        r.info.shard = k, r.info.index = (int)i;
        int src_ok = r.local_source < n_src;
        r.info.source = src_ok ? global[r.local_source] : 0;
        int name_ok = r.name_bytes <= MAX_NAME && names_at + r.name_offset + r.name_bytes <= data_at &&
                      valid_name((const char *)s->head + names_at + r.name_offset, r.name_bytes);
        if (!src_ok || !name_ok) r.bad = "its index entry is corrupted";
        else if (r.left == 0 || r.right == 0 || r.offset < data_at || r.offset > file_bytes ||
                 (uint64_t)r.left + r.right > file_bytes - r.offset)
            r.bad = "its index entry is corrupted (data out of bounds)";
        else if (r.offset + r.left + r.right > s->actual_bytes)
            r.bad = "its bytes are cut off (the shard is truncated)";
        char *disp = pool + used;
        const char *src_name = src_ok ? src_names[r.local_source] : "?";
        int k2 = name_ok && r.name_bytes
                     ? snprintf(disp, pool_bytes - used, "%s/%.*s", src_name, (int)r.name_bytes,
                                (const char *)s->head + names_at + r.name_offset)
                     : snprintf(disp, pool_bytes - used, "%s/%llu", src_name, (unsigned long long)r.info.frame);
        r.info.display = disp;
        r.info.name = name_ok && r.name_bytes ? disp + strlen(src_name) + 1 : "";
        used += (size_t)k2 + 1;
        rc = push_record(d, &r);
    }
    free(global), free(src_names);
    s->names_at = names_at, s->data_at = data_at;
    if (rc == 0 && s->problem) rc = -1; /* indexed, but truncated or of the wrong size */
done:
    close(fd);
    return rc;
}

void dataset_close(dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n_shards; i++)
        free(d->shards[i].path), free(d->shards[i].problem), free(d->shards[i].head);
    for (int i = 0; i < d->n_pools; i++) free(d->pools[i]);
    free(d->pools), free(d->shards), free(d->sources), free(d->recs), free(d->dir), free(d->unlisted);
    mf_free(&d->mf);
    free(d);
}

/* dataset_open; self_locked: the caller holds the writer's lock (so unlisted files are
 * not another process's pack in progress). */
static dataset *open_dataset(const char *dir, int lenient, int self_locked) {
    dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(dir))) {
        free(d);
        nn_fail("dataset %s: out of memory", dir);
        return NULL;
    }
    char *mpath = path_join(dir, DATASET_MANIFEST);
    struct stat st;
    int has_manifest = mpath && stat(mpath, &st) == 0;
    free(mpath);
    if (!has_manifest) {
        nn_fail("dataset %s is half-written: it has shard files but no %s (its first pack did not finish%s)", dir,
                DATASET_MANIFEST, !self_locked && being_written(dir) ? " yet: a pack is in progress" : "; remove the folder");
        goto fail;
    }
    if (mf_load(dir, &d->mf)) goto fail;
    char unlisted[512];
    long max_no;
    int n_unlisted = scan_unlisted(dir, &d->mf, unlisted, sizeof unlisted, &max_no);
    if (n_unlisted) {
        if (!self_locked && being_written(dir))
            nn_fail("dataset %s is being written by another process (a pack in progress: %s)", dir, unlisted);
        else
            nn_fail("dataset %s is half-written: %d file%s not in its manifest (%s%s): a pack that did not finish; "
                    "remove them to use the dataset as it was before that pack",
                    dir, n_unlisted, n_unlisted == 1 ? " is" : "s are", unlisted, n_unlisted > 4 ? ", ..." : "");
        if (!lenient) goto fail;
        if (!(d->unlisted = strdup(nn_last_error()))) {
            nn_fail("dataset %s: out of memory", dir);
            goto fail;
        }
    }
    d->sources = calloc((size_t)d->mf.n_sources + 1, sizeof *d->sources);
    d->shards = calloc((size_t)d->mf.n_shards + 1, sizeof *d->shards);
    if (!d->sources || !d->shards) {
        nn_fail("dataset %s: out of memory", dir);
        goto fail;
    }
    d->n_shards = d->mf.n_shards;
    for (int i = 0; i < d->mf.n_sources; i++)
        d->sources[i] = (dataset_source_info){d->mf.sources[i].name, d->mf.sources[i].split, d->mf.sources[i].pairs};
    for (int k = 0; k < d->mf.n_shards; k++) {
        shard *s = &d->shards[k];
        s->info = (dataset_shard_info){d->mf.shards[k].file, d->mf.shards[k].records, d->mf.shards[k].bytes,
                                       IMAGE_JPEG, NULL};
        if (!(s->path = path_join(dir, d->mf.shards[k].file))) {
            nn_fail("dataset %s: out of memory", dir);
            goto fail;
        }
        if (read_shard(d, k)) {
            if (!s->problem) goto fail; /* out of memory */
            if (!lenient) {
                nn_fail("dataset %s: %s (deep3d dataset --verify %s lists the damage)", dir, s->problem, dir);
                goto fail;
            }
        }
    }
    return d;
fail:
    dataset_close(d);
    return NULL;
}

dataset *dataset_open(const char *dir, int lenient) { return open_dataset(dir, lenient, 0); }

const char *dataset_dir(const dataset *d) { return d->dir; }
const char *dataset_unlisted(const dataset *d) { return d->unlisted; }
void dataset_size(const dataset *d, int *width, int *height) { *width = d->mf.width, *height = d->mf.height; }
int dataset_source_count(const dataset *d) { return d->mf.n_sources; }
int dataset_shard_count(const dataset *d) { return d->mf.n_shards; }
long dataset_record_count(const dataset *d) { return d->n_recs; }
const dataset_source_info *dataset_source(const dataset *d, int i) {
    return i >= 0 && i < d->mf.n_sources ? &d->sources[i] : NULL;
}
const dataset_shard_info *dataset_shard(const dataset *d, int i) {
    return i >= 0 && i < d->mf.n_shards ? &d->shards[i].info : NULL;
}
const dataset_record_info *dataset_record(const dataset *d, long r) {
    return r >= 0 && r < d->n_recs ? &d->recs[r].info : NULL;
}

void dataset_record_label(const dataset *d, long r, char *buf, size_t size) {
    const record *rec = &d->recs[r];
    snprintf(buf, size, "dataset %s: %s record %d (source '%s', frame %llu '%s')", d->dir,
             d->mf.shards[rec->info.shard].file, rec->info.index, d->mf.sources[rec->info.source].name,
             (unsigned long long)rec->info.frame, rec->info.name);
}

/* The CRC-32 of a record as the writer computes it: entry bytes 0..43, name, views. */
static uint32_t record_crc(const unsigned char *entry44, const void *name, size_t name_bytes, const void *views,
                           size_t view_bytes) {
    return nn_crc32(nn_crc32(nn_crc32(0, entry44, ENTRY_CRC_AT), name, name_bytes), views, view_bytes);
}

/* Reads and checks record r; with decode, also decodes both views into *l and *r_. */
static int load_record(const dataset *d, long r, int decode, image **l, image **rv) {
    char label[768];
    if (r < 0 || r >= d->n_recs) return nn_fail("dataset %s: record %ld out of range (%ld)", d->dir, r, d->n_recs);
    const record *rec = &d->recs[r];
    const shard *s = &d->shards[rec->info.shard];
    dataset_record_label(d, r, label, sizeof label);
    if (rec->bad) return nn_fail("%s: %s", label, rec->bad);
    size_t n = (size_t)rec->left + rec->right;
    unsigned char *buf = malloc(n);
    if (!buf) return nn_fail("%s: out of memory for %zu bytes", label, n);
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? pread(fd, buf, n, (off_t)rec->offset) : -1;
    int e = errno;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)n) {
        free(buf);
        return nn_fail("%s: cannot read its %zu bytes: %s", label, n, got < 0 ? strerror(e) : "short read");
    }
    unsigned char entry[ENTRY_CRC_AT];
    put_u64(entry, rec->offset), put_u32(entry + 8, rec->left), put_u32(entry + 12, rec->right);
    put_u64(entry + 16, rec->info.frame), put_u32(entry + 24, rec->local_source), put_u32(entry + 28, rec->name_offset);
    memcpy(entry + 32, rec->reserved, sizeof rec->reserved);
    uint32_t crc = record_crc(entry, s->head + s->names_at + rec->name_offset, rec->name_bytes, buf, n);
    if (crc != rec->crc) {
        free(buf);
        return nn_fail("%s: checksum mismatch (stored 0x%08x, computed 0x%08x)", label, rec->crc, crc);
    }
    int rc = 0;
    if (decode) {
        image *a = image_decode(buf, rec->left, "left view");
        image *b = a ? image_decode(buf + rec->left, rec->right, "right view") : NULL;
        if (!a || !b) rc = nn_fail_context("%s", label);
        else if (a->w != d->mf.width || a->h != d->mf.height || b->w != a->w || b->h != a->h)
            rc = nn_fail("%s: the views are %dx%d and %dx%d, the dataset's are %dx%d", label, a->w, a->h, b->w, b->h,
                         d->mf.width, d->mf.height);
        if (rc || !l) image_free(a), image_free(b);
        else *l = a, *rv = b;
    }
    free(buf);
    return rc;
}

int dataset_read_pair(const dataset *d, long r, image **left, image **right) {
    *left = *right = NULL;
    return load_record(d, r, 1, left, right);
}

int dataset_check_record(const dataset *d, long r, int decode) { return load_record(d, r, decode, NULL, NULL); }

/* ---- writing ---- */

typedef struct {
    uint64_t data_at;   /* offset in the shard's data area */
    uint64_t frame;
    int source;         /* in the manifest */
    uint32_t name_at, name_bytes, left, right;
} wrec;

struct dataset_writer {
    char *dir;
    int lock_fd;
    manifest mf;
    dataset_pack_config cfg;
    long next_no;
    int cur;
    int first_new_source;
    wrec *recs;
    int n, cap;
    bytes names, data;
    long pairs;
    char **written; /* shard files (names in dir) written by this writer */
    int n_written;
};

dataset_writer *dataset_writer_open(const char *dir, const dataset_pack_config *cfg) {
    if (cfg->shard_pairs < 1 || (cfg->codec != IMAGE_JPEG && cfg->codec != IMAGE_PNG) || cfg->quality < 1 ||
        cfg->quality > 100 || cfg->width < 0 || cfg->height < 0 || (cfg->width == 0) != (cfg->height == 0) ||
        cfg->width > 65535 || cfg->height > 65535) {
        nn_fail("dataset %s: bad packing configuration (%dx%d, quality %d, %d pairs per shard)", dir, cfg->width,
                cfg->height, cfg->quality, cfg->shard_pairs);
        return NULL;
    }
    dataset_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        nn_fail("dataset %s: out of memory", dir);
        return NULL;
    }
    w->lock_fd = -1, w->cur = -1, w->cfg = *cfg;
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || mkdir(dir, 0777) != 0) {
            nn_fail("dataset %s: cannot create the folder: %s", dir, strerror(errno));
            goto fail;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        nn_fail("dataset %s: exists and is not a folder", dir);
        goto fail;
    }
    if ((w->lock_fd = lock_dir(dir)) < 0) goto fail;
    if (dataset_is_packed(dir)) {
        dataset *d = open_dataset(dir, 0, 1); /* refuses half-written or damaged datasets */
        if (!d) goto fail;
        w->mf = d->mf; /* taken over */
        memset(&d->mf, 0, sizeof d->mf);
        dataset_close(d);
        if (cfg->width && (cfg->width != w->mf.width || cfg->height != w->mf.height)) {
            nn_fail("dataset %s is %dx%d; --size asks for %dx%d", dir, w->mf.width, w->mf.height, cfg->width,
                    cfg->height);
            goto fail;
        }
    } else {
        DIR *dd = opendir(dir);
        int entries = 0;
        for (struct dirent *e; dd && (e = readdir(dd));) entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (dd) closedir(dd);
        if (entries) {
            nn_fail("dataset %s: exists and is not a deep3d dataset (no %s): not writing into it", dir,
                    DATASET_MANIFEST);
            goto fail;
        }
        w->mf.width = cfg->width ? cfg->width : 432;
        w->mf.height = cfg->height ? cfg->height : 180;
    }
    w->cfg.width = w->mf.width, w->cfg.height = w->mf.height;
    char unused[8];
    scan_unlisted(dir, &w->mf, unused, sizeof unused, &w->next_no);
    w->next_no++;
    w->first_new_source = w->mf.n_sources;
    return w;
fail:
    if (w->lock_fd >= 0) close(w->lock_fd);
    mf_free(&w->mf);
    free(w->dir), free(w);
    return NULL;
}

const dataset_pack_config *dataset_writer_config(const dataset_writer *w) { return &w->cfg; }
long dataset_writer_pairs(const dataset_writer *w) { return w->pairs; }
int dataset_writer_shards(const dataset_writer *w) { return w->n_written; }

int dataset_writer_has_source(const dataset_writer *w, const char *name) {
    return mf_find_source(&w->mf, name, strlen(name)) >= 0;
}

int dataset_writer_begin_source(dataset_writer *w, const char *name) {
    size_t len = strlen(name);
    if (len == 0 || name[0] == ' ' || !valid_name(name, len))
        return nn_fail("dataset %s: bad source name '%.64s' (1..255 bytes, no control characters, not starting "
                       "with a space)", w->dir, name);
    int i = mf_find_source(&w->mf, name, len);
    if (i >= 0)
        return nn_fail("dataset %s: source '%s' is already in the dataset (%ld pairs); name it otherwise (--source)",
                       w->dir, name, w->mf.sources[i].pairs);
    if (mf_add_source(&w->mf, name, len, SPLIT_NONE, 0)) return -1;
    w->cur = w->mf.n_sources - 1;
    return 0;
}

void dataset_encoded_free(dataset_encoded *e) {
    if (!e) return;
    free(e->bytes);
    e->bytes = NULL, e->left_bytes = e->right_bytes = 0;
}

/* view fitted to W x H by cfg->fit */
static image *fit_view(const image *v, const dataset_pack_config *cfg, const augment_params *p) {
    if (cfg->fit == DATASET_FIT_STRETCH) return image_resize(v, cfg->width, cfg->height);
    image *c = image_crop(v, p->x, p->y, p->w, p->h);
    image *out = c ? image_resize(c, cfg->width, cfg->height) : NULL;
    image_free(c);
    return out;
}

int dataset_encode_pair(const dataset_pack_config *cfg, const image *left, const image *right, const char *what,
                        dataset_encoded *out) {
    memset(out, 0, sizeof *out);
    if (left->w != right->w || left->h != right->h)
        return nn_fail("%s: the left view is %dx%d but the right view %dx%d", what, left->w, left->h, right->w,
                       right->h);
    if (cfg->width < 1 || cfg->height < 1) return nn_fail("%s: no base size to pack to", what);
    augment_params p;
    augment_center(&p, left->w, left->h, cfg->width, cfg->height);
    image *l = fit_view(left, cfg, &p), *r = l ? fit_view(right, cfg, &p) : NULL;
    unsigned char *lb = NULL, *rb = NULL;
    size_t ln = 0, rn = 0;
    int rc = !l || !r || image_encode(l, cfg->codec, cfg->quality, "the left view", &lb, &ln) ||
             image_encode(r, cfg->codec, cfg->quality, "the right view", &rb, &rn);
    image_free(l), image_free(r);
    if (!rc && (out->bytes = malloc(ln + rn))) {
        memcpy(out->bytes, lb, ln), memcpy(out->bytes + ln, rb, rn);
        out->left_bytes = ln, out->right_bytes = rn;
    } else if (!rc) {
        rc = nn_fail("out of memory");
    }
    free(lb), free(rb);
    return rc ? nn_fail_context("%s", what) : 0;
}

/* Writes the records gathered so far as the next shard file (atomically) and lists it
 * in w->mf. Nothing to do when there are none. */
static int flush_shard(dataset_writer *w) {
    if (w->n == 0) return 0;
    int n_src = 0, rc = -1;
    int *local = malloc((size_t)w->mf.n_sources * sizeof *local);
    bytes table = {0}, index = {0};
    if (!local) {
        nn_fail("dataset %s: out of memory", w->dir);
        goto done;
    }
    for (int i = 0; i < w->mf.n_sources; i++) local[i] = -1;
    for (int i = 0; i < w->n; i++) {
        int g = w->recs[i].source;
        if (local[g] < 0) {
            local[g] = n_src++;
            const char *name = w->mf.sources[g].name;
            unsigned char len[4], zeros[8] = {0};
            size_t nb = strlen(name);
            put_u32(len, (uint32_t)nb);
            if (bytes_put(&table, len, 4) || bytes_put(&table, name, nb) ||
                bytes_put(&table, zeros, (size_t)(round8(4 + nb) - 4 - nb)))
                goto done;
        }
    }
    uint64_t index_at = HEADER_BYTES + table.n, names_at = index_at + (uint64_t)ENTRY_BYTES * w->n;
    uint64_t data_at = names_at + w->names.n, file_bytes = data_at + w->data.n;
    for (int i = 0; i < w->n; i++) {
        const wrec *r = &w->recs[i];
        unsigned char e[ENTRY_BYTES] = {0};
        put_u64(e, data_at + r->data_at), put_u32(e + 8, r->left), put_u32(e + 12, r->right);
        put_u64(e + 16, r->frame), put_u32(e + 24, (uint32_t)local[r->source]);
        put_u32(e + 28, r->name_at), put_u32(e + 32, r->name_bytes);
        put_u32(e + ENTRY_CRC_AT, record_crc(e, w->names.p + r->name_at, r->name_bytes, w->data.p + r->data_at,
                                             (size_t)r->left + r->right));
        if (bytes_put(&index, e, sizeof e)) goto done;
    }
    unsigned char h[HEADER_BYTES] = {0};
    memcpy(h, SHARD_MAGIC, sizeof SHARD_MAGIC);
    put_u32(h + 8, DATASET_VERSION), put_u32(h + 12, (uint32_t)w->cfg.codec);
    put_u32(h + 16, (uint32_t)w->cfg.width), put_u32(h + 20, (uint32_t)w->cfg.height);
    put_u32(h + 24, (uint32_t)n_src), put_u32(h + 28, (uint32_t)w->n);
    put_u64(h + 32, index_at), put_u64(h + 40, data_at), put_u64(h + 48, file_bytes);
    put_u32(h + HEADER_CRC_AT, nn_crc32(nn_crc32(0, h, HEADER_CRC_AT), table.p, table.n));
    char file[64];
    snprintf(file, sizeof file, "shard-%06ld.d3s", w->next_no);
    char **written = realloc(w->written, (size_t)(w->n_written + 1) * sizeof *written);
    if (!written) {
        nn_fail("dataset %s: out of memory", w->dir);
        goto done;
    }
    w->written = written;
    if (!(w->written[w->n_written] = strdup(file))) {
        nn_fail("dataset %s: out of memory", w->dir);
        goto done;
    }
    const void *parts[5] = {h, table.p, index.p, w->names.p, w->data.p};
    size_t sizes[5] = {HEADER_BYTES, table.n, index.n, w->names.n, w->data.n};
    if (atomic_write(w->dir, file, parts, sizes, 5)) {
        free(w->written[w->n_written]);
        goto done;
    }
    w->n_written++, w->next_no++;
    if (mf_add_shard(&w->mf, file, w->n, file_bytes)) goto done;
    w->n = 0, w->names.n = 0, w->data.n = 0;
    rc = 0;
done:
    free(local), free(table.p), free(index.p);
    return rc;
}

static int grow_recs(dataset_writer *w) {
    int cap = w->cap ? 2 * w->cap : 256;
    wrec *p = realloc(w->recs, (size_t)cap * sizeof *p);
    if (!p) return -1;
    w->recs = p, w->cap = cap;
    return 0;
}

int dataset_writer_add_encoded(dataset_writer *w, dataset_encoded *enc, uint64_t frame, const char *frame_name) {
    int rc = -1;
    size_t nb = frame_name ? strlen(frame_name) : 0;
    if (w->cur < 0) nn_fail("dataset %s: a pair added before any source was begun", w->dir);
    else if (!valid_name(frame_name ? frame_name : "", nb))
        nn_fail("dataset %s: bad frame name '%.64s' (0..255 bytes, no control characters)", w->dir, frame_name);
    else if (!enc->bytes || enc->left_bytes == 0 || enc->right_bytes == 0 || enc->left_bytes > UINT32_MAX ||
             enc->right_bytes > UINT32_MAX)
        nn_fail("dataset %s: frame %llu of source '%s': views of %zu and %zu bytes cannot be stored", w->dir,
                (unsigned long long)frame, w->mf.sources[w->cur].name, enc->left_bytes, enc->right_bytes);
    else if (w->n == w->cap && grow_recs(w))
        nn_fail("dataset %s: out of memory", w->dir);
    else {
        w->recs[w->n] = (wrec){w->data.n, frame, w->cur, (uint32_t)w->names.n, (uint32_t)nb,
                               (uint32_t)enc->left_bytes, (uint32_t)enc->right_bytes};
        if (!bytes_put(&w->names, frame_name, nb) &&
            !bytes_put(&w->data, enc->bytes, enc->left_bytes + enc->right_bytes)) {
            w->n++, w->pairs++, w->mf.sources[w->cur].pairs++;
            rc = w->n >= w->cfg.shard_pairs || w->data.n >= SHARD_MAX_DATA ? flush_shard(w) : 0;
        }
    }
    dataset_encoded_free(enc);
    return rc;
}

int dataset_writer_add(dataset_writer *w, const image *left, const image *right, uint64_t frame,
                       const char *frame_name) {
    dataset_encoded enc;
    char what[320];
    snprintf(what, sizeof what, "frame %llu '%.255s'", (unsigned long long)frame, frame_name ? frame_name : "");
    if (dataset_encode_pair(&w->cfg, left, right, what, &enc)) return -1;
    return dataset_writer_add_encoded(w, &enc, frame, frame_name);
}

static void writer_free(dataset_writer *w) {
    if (w->lock_fd >= 0) close(w->lock_fd);
    for (int i = 0; i < w->n_written; i++) free(w->written[i]);
    mf_free(&w->mf);
    free(w->written), free(w->recs), free(w->names.p), free(w->data.p), free(w->dir), free(w);
}

void dataset_writer_abort(dataset_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_written; i++) {
        char *p = path_join(w->dir, w->written[i]);
        if (p) unlink(p);
        free(p);
    }
    if (w->n_written) sync_dir(w->dir);
    writer_free(w);
}

int dataset_writer_commit(dataset_writer *w) {
    if (flush_shard(w)) goto fail;
    /* sources of this run that got no pair are left out */
    int k = w->first_new_source;
    for (int i = w->first_new_source; i < w->mf.n_sources; i++) {
        if (w->mf.sources[i].pairs > 0) w->mf.sources[k++] = w->mf.sources[i];
        else free(w->mf.sources[i].name);
    }
    w->mf.n_sources = k;
    if (mf_save(w->dir, &w->mf)) goto fail;
    writer_free(w);
    return 0;
fail:
    dataset_writer_abort(w);
    return -1;
}

/* ---- splits ---- */

/* FNV-1a 64 of the name (Fowler, Noll, Vo; offset basis 14695981039346656037, prime
 * 1099511628211) mixed with the seed by splitmix64's finaliser (Steele, Lea, Flood,
 * "Fast splittable pseudorandom number generators", OOPSLA 2014). */
static uint64_t source_key(const char *name, uint64_t seed) {
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ull;
    uint64_t z = h ^ (seed + 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t key;
    const char *name;
    int i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->name, y->name);
}

int dataset_assign_splits(const char *dir, double val, double test, uint64_t seed, int reassign) {
    if (!(val >= 0 && test >= 0 && val < 1 && test < 1 && val + test < 1))
        return nn_fail("dataset %s: bad split fractions: val %g, test %g (each in [0, 1), together below 1)", dir,
                       val, test);
    int lock = lock_dir(dir);
    if (lock < 0) return -1;
    int rc = -1;
    keyed *order = NULL;
    dataset *d = open_dataset(dir, 0, 1);
    if (!d) goto done;
    manifest *m = &d->mf;
    order = malloc((size_t)(m->n_sources ? m->n_sources : 1) * sizeof *order);
    if (!order) {
        nn_fail("dataset %s: out of memory", dir);
        goto done;
    }
    double total = 0, count[SPLIT_ALL] = {0};
    int n_order = 0, sources_in[SPLIT_ALL] = {0};
    for (int i = 0; i < m->n_sources; i++) {
        if (reassign) m->sources[i].split = SPLIT_NONE;
        total += (double)m->sources[i].pairs;
        count[m->sources[i].split] += (double)m->sources[i].pairs;
        sources_in[m->sources[i].split]++;
        if (m->sources[i].split == SPLIT_NONE)
            order[n_order++] = (keyed){source_key(m->sources[i].name, seed), m->sources[i].name, i};
    }
    qsort(order, (size_t)n_order, sizeof *order, cmp_keyed);
    const double target[SPLIT_ALL] = {0, 0, val * total, test * total};
    for (int j = 0; j < n_order; j++) {
        mf_source *s = &m->sources[order[j].i];
        double p = (double)s->pairs;
        dataset_split to = SPLIT_TRAIN;
        if (test > 0 && count[SPLIT_TEST] + p / 2 < target[SPLIT_TEST]) to = SPLIT_TEST;
        else if (val > 0 && count[SPLIT_VAL] + p / 2 < target[SPLIT_VAL]) to = SPLIT_VAL;
        s->split = to, count[to] += p, sources_in[to]++;
    }
    sources_in[SPLIT_NONE] = 0;
    /* a split asked for and left empty takes the first train source of this pass */
    const dataset_split want[2] = {SPLIT_TEST, SPLIT_VAL};
    for (int t = 0; t < 2; t++) {
        dataset_split x = want[t];
        if ((x == SPLIT_TEST ? test : val) <= 0 || sources_in[x] > 0) continue;
        for (int j = 0; j < n_order && sources_in[x] == 0; j++) {
            mf_source *s = &m->sources[order[j].i];
            if (s->split == SPLIT_TRAIN && sources_in[SPLIT_TRAIN] > 1)
                s->split = x, sources_in[x]++, sources_in[SPLIT_TRAIN]--;
        }
        if (sources_in[x] == 0) {
            nn_fail("dataset %s: cannot give train%s%s a source each: it has %d source%s%s", dir,
                    val > 0 ? ", val" : "", test > 0 ? ", test" : "", m->n_sources, m->n_sources == 1 ? "" : "s",
                    reassign ? "" : " not already assigned (--reassign starts over)");
            goto done;
        }
    }
    rc = mf_save(dir, m);
done:
    free(order);
    dataset_close(d);
    close(lock);
    return rc;
}
