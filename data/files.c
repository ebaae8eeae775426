/* Committing temporary files, folders, batch input lists. See files.h. */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../nn/status.h"

int files_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int files_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int files_mkdirs(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return nn_fail("path too long: '%s'", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return nn_fail("cannot create folder '%s': %s", buf, strerror(errno));
            if (!files_is_dir(buf)) return nn_fail("cannot create folder '%s': a file has that name", buf);
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

void files_tmp_name(char *buf, size_t size, const char *path) { snprintf(buf, size, "%s.tmp.%ld", path, (long)getpid()); }

int files_close_synced(FILE *f, const char *path) {
    int e = 0;
    if (fflush(f) || fsync(fileno(f))) e = errno;
    if (fclose(f) && !e) e = errno;
    return e ? nn_fail("cannot write '%s': %s", path, strerror(e)) : 0;
}

int files_commit(const char *tmp, const char *path, int replace) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0) {
        if (fsync(fd) && errno != EINVAL) e = errno;
        close(fd);
    }
    if (!e) {
        if (replace) {
            if (rename(tmp, path)) e = errno;
        } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE)) {
            e = errno;
            if (e == EINVAL || e == ENOSYS) { /* a filesystem without it: link fails on an existing name */
                e = link(tmp, path) ? errno : 0;
                if (!e) unlink(tmp);
            }
        }
    }
    if (!e) return 0;
    unlink(tmp);
    if (e == EEXIST) return nn_fail("'%s' exists (not replaced)", path);
    return nn_fail("cannot write '%s': %s", path, strerror(e));
}

/* ---------------------------------------------------------------- batch lists */

static int matches(const char *name, const char *patterns) {
    const char *p = patterns;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char pat[256];
        if (len && len < sizeof pat) {
            memcpy(pat, p, len), pat[len] = 0;
            if (fnmatch(pat, name, FNM_CASEFOLD) == 0) return 1;
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

static int push(files_list *l, const char *path, const char *rel) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        files_item *ni = realloc(l->items, (size_t)cap * sizeof *ni);
        if (!ni) return nn_fail("out of memory for the list of input files");
        l->items = ni, l->cap = cap;
    }
    char *p = strdup(path), *r = strdup(rel);
    if (!p || !r) {
        free(p), free(r);
        return nn_fail("out of memory for the list of input files");
    }
    l->items[l->n++] = (files_item){p, r};
    return 0;
}

static int walk(files_list *l, const char *dir, const char *rel, const char *patterns, const char *exclude) {
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) return nn_fail("cannot read folder '%s': %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (rc || name[0] == '.') continue;
        char path[PATH_MAX], sub[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (files_is_dir(path)) {
            char real[PATH_MAX];
            if (exclude && realpath(path, real) && !strcmp(real, exclude)) continue;
            if (*rel) snprintf(sub, sizeof sub, "%s/%s", rel, name);
            else snprintf(sub, sizeof sub, "%s", name);
            rc = walk(l, path, sub, patterns, exclude);
        } else if (matches(name, patterns)) {
            rc = push(l, path, rel);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int files_list_add(files_list *l, const char *arg, const char *patterns, const char *exclude) {
    struct stat st;
    if (stat(arg, &st)) return nn_fail("cannot open '%s': %s", arg, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return push(l, arg, "");
    char ex[PATH_MAX];
    const char *exr = exclude && realpath(exclude, ex) ? ex : NULL;
    return walk(l, arg, "", patterns, exr);
}

void files_list_free(files_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i].path), free(l->items[i].rel);
    free(l->items);
    memset(l, 0, sizeof *l);
}

void files_join(char *buf, size_t size, const char *dir, const char *rel, const char *name) {
    const size_t n = strlen(dir);
    const char *sep = n > 0 && dir[n - 1] == '/' ? "" : "/"; /* "out/" + "a.png": one slash */
    if (rel && *rel) snprintf(buf, size, "%s%s%s/%s", dir, sep, rel, name);
    else snprintf(buf, size, "%s%s%s", dir, sep, name);
}
