/* Atomic file replacement through a temporary file. See atomic_file.h. */
#include "atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

/* The folder of path ("." when it has none), in buf. */
static void folder_of(const char *path, char *buf, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, size, ".");
    else if (slash == path) snprintf(buf, size, "/");
    else snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

FILE *nn_atomic_open(const char *path, char *tmp, size_t size) {
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) + 1 : 0;
    if ((size_t)snprintf(tmp, size, "%.*s" NN_TMP_PREFIX "XXXXXX", dir_len, path) >= size) {
        nn_fail("cannot create a temporary file beside %s: name too long", path);
        return NULL;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        nn_fail("cannot create a temporary file beside %s: %s", path, strerror(errno));
        return NULL;
    }
    mode_t mask = umask(0);
    umask(mask);
    FILE *fp = NULL;
    if (fchmod(fd, 0666 & ~mask) != 0 || !(fp = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(tmp);
        nn_fail("cannot create a temporary file beside %s: %s", path, strerror(e));
        return NULL;
    }
    return fp;
}

void nn_atomic_abandon(FILE *fp, const char *tmp) {
    if (fp) fclose(fp);
    unlink(tmp);
}

int nn_check_writable_folder(const char *dir) {
    char path[4096], tmp[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/x", dir) >= sizeof path)
        return nn_fail("output folder %s is not writable: name too long", dir);
    errno = 0;
    FILE *probe = nn_atomic_open(path, tmp, sizeof tmp);
    if (!probe) return nn_fail("output folder %s is not writable: %s", dir, strerror(errno ? errno : EIO));
    nn_atomic_abandon(probe, tmp);
    return 0;
}

int nn_atomic_commit(FILE *fp, const char *tmp, const char *path, const char *what) {
    const char *step = "writing";
    int e = 0;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) e = errno;
    if (fclose(fp) != 0 && !e) e = errno, step = "closing";
    if (!e && rename(tmp, path) != 0) e = errno, step = "renaming";
    if (e) {
        unlink(tmp);
        return nn_fail("%s %s: %s %s: %s", what, path, step, tmp, strerror(e));
    }
    char dir[4096];
    folder_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { /* best effort: the new file is in place already */
        (void)fsync(fd);
        close(fd);
    }
    return 0;
}

int nn_remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    const size_t plen = strlen(NN_TMP_PREFIX);
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, NN_TMP_PREFIX, plen) || strlen(e->d_name) != plen + 6) continue;
        char full[4096];
        struct stat st;
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full) continue;
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && unlink(full) == 0) removed++;
    }
    closedir(d);
    return removed;
}
