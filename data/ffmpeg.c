/* ffmpeg and ffprobe as subprocesses: spawning with pipes, probing, decoding to rgb24
 * frames with timestamps, encoding from a raw Matroska stream. See ffmpeg.h. */
#include "ffmpeg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../nn/status.h"

extern char **environ;

/* ---------------------------------------------------------------- small helpers */

/* src into dst (size bytes), cut short when longer. */
static void copy_str(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes: n (done), 0 (end of file before the first byte), or -1 (an
 * error, or end of file part-way: errno 0). */
static ssize_t read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            if (got == 0) return 0;
            errno = 0;
            return -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)n;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

const char *ff_program(const char *name) {
    const char *env = !strcmp(name, "ffprobe") ? getenv("DEEP3D_FFPROBE") : !strcmp(name, "ffmpeg") ? getenv("DEEP3D_FFMPEG") : NULL;
    return env && *env ? env : name;
}

int ff_check_program(const char *name) {
    const char *prog = ff_program(name);
    if (strchr(prog, '/')) {
        if (access(prog, X_OK) == 0) return 0;
        return nn_fail("%s not found: '%s' is not an executable file (Debian: apt-get install ffmpeg)", name, prog);
    }
    const char *path = getenv("PATH");
    if (path) {
        for (const char *p = path; *p;) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            char full[4096];
            snprintf(full, sizeof full, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", prog);
            struct stat st;
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) return 0;
            p += len + (colon ? 1 : 0);
            if (!colon) break;
        }
    }
    return nn_fail("%s not found in PATH (Debian: apt-get install ffmpeg)", name);
}

/* An unnamed temporary file for a child's stderr. */
static int stderr_file(void) {
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char name[] = "/tmp/deep3d-ffmpeg-XXXXXX";
    fd = mkostemp(name, O_CLOEXEC);
    if (fd >= 0) unlink(name);
    return fd;
}

int ff_spawn(ff_proc *p, const char *const *argv, int pipes, const char *what) {
    memset(p, 0, sizeof *p);
    p->pid = -1, p->in_fd = p->out_fd = p->aux_fd = p->err_fd = -1;
    copy_str(p->what, sizeof p->what, what);
    if (ff_check_program(argv[0])) return -1;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, aux[2] = {-1, -1}, err = stderr_file();
    if (err < 0 || ((pipes & FF_PIPE_IN) && pipe2(in, O_CLOEXEC)) || ((pipes & FF_PIPE_OUT) && pipe2(out, O_CLOEXEC)) ||
        ((pipes & FF_PIPE_AUX) && pipe2(aux, O_CLOEXEC))) {
        int e = errno;
        close_fd(&in[0]), close_fd(&in[1]), close_fd(&out[0]), close_fd(&out[1]), close_fd(&aux[0]);
        close_fd(&aux[1]), close_fd(&err);
        return nn_fail("%s: cannot create pipes: %s", what, strerror(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (pipes & FF_PIPE_IN) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (pipes & FF_PIPE_OUT) posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    else posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    if (pipes & FF_PIPE_AUX) posix_spawn_file_actions_adddup2(&fa, aux[1], 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def, none;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const char *args[128];
    int n = 0;
    args[n++] = ff_program(argv[0]);
    for (int i = 1; argv[i] && n < 127; i++) args[n++] = argv[i];
    args[n] = NULL;
    int rc = posix_spawnp(&p->pid, args[0], &fa, &attr, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&in[0]), close_fd(&out[1]), close_fd(&aux[1]);
    if (rc) {
        close_fd(&in[1]), close_fd(&out[0]), close_fd(&aux[0]), close_fd(&err);
        p->pid = -1;
        if (rc == ENOENT) return nn_fail("%s not found in PATH (Debian: apt-get install ffmpeg)", argv[0]);
        return nn_fail("%s: cannot start %s: %s", what, args[0], strerror(rc));
    }
    p->in_fd = in[1], p->out_fd = out[0], p->aux_fd = aux[0], p->err_fd = err;
    return 0;
}

/* The last non-empty line the child printed on stderr, into buf. */
static void last_stderr_line(int fd, char *buf, size_t size) {
    buf[0] = 0;
    if (fd < 0) return;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end <= 0) return;
    char tail[4096];
    off_t from = end > (off_t)sizeof tail - 1 ? end - (off_t)sizeof tail + 1 : 0;
    ssize_t n = pread(fd, tail, (size_t)(end - from), from);
    if (n <= 0) return;
    tail[n] = 0;
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r' || tail[n - 1] == ' ')) tail[--n] = 0;
    char *start = strrchr(tail, '\n');
    start = start ? start + 1 : tail;
    char *cr = strrchr(start, '\r'); /* progress lines redraw with \r */
    if (cr) start = cr + 1;
    copy_str(buf, size, start);
}

int ff_wait(ff_proc *p) {
    close_fd(&p->in_fd), close_fd(&p->out_fd), close_fd(&p->aux_fd);
    if (p->pid <= 0) {
        close_fd(&p->err_fd);
        return 0;
    }
    int st = 0;
    pid_t r;
    while ((r = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR) {
    }
    p->pid = -1;
    char line[1024];
    last_stderr_line(p->err_fd, line, sizeof line);
    close_fd(&p->err_fd);
    if (r < 0) return nn_fail("%s: waitpid: %s", p->what, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFSIGNALED(st)) return nn_fail("%s killed by signal %d%s%s", p->what, WTERMSIG(st), line[0] ? ": " : "", line);
    return nn_fail("%s failed (exit status %d)%s%s", p->what, WEXITSTATUS(st), line[0] ? ": " : "", line);
}

void ff_kill(ff_proc *p) {
    if (p->pid > 0) kill(p->pid, SIGKILL);
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", nn_last_error());
    ff_wait(p);
    nn_fail("%s", saved);
}

int ff_run(const char *const *argv, char **out, const char *what) {
    if (out) *out = NULL;
    ff_proc p;
    if (ff_spawn(&p, argv, FF_PIPE_OUT, what)) return -1;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    int oom = !buf;
    for (;;) {
        if (!oom && len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) oom = 1;
            else buf = nb, cap *= 2;
        }
        char sink[4096];
        char *dst = oom ? sink : buf + len;
        ssize_t r = read(p.out_fd, dst, oom ? sizeof sink : cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (!oom) len += (size_t)r;
    }
    if (ff_wait(&p)) {
        free(buf);
        return -1;
    }
    if (oom) {
        free(buf);
        return nn_fail("%s: out of memory for its output", what);
    }
    buf[len] = 0;
    if (out) *out = buf;
    else free(buf);
    return 0;
}

/* ---------------------------------------------------------------- time */

__extension__ typedef __int128 ff_i128;

int64_t ff_ticks_to_ns(int64_t pts, ff_rational tb) {
    if (tb.den <= 0) return 0;
    ff_i128 a = (ff_i128)pts * tb.num * 1000000000, d = tb.den;
    ff_i128 q = a >= 0 ? (a + d / 2) / d : -((-a + d / 2) / d);
    return (int64_t)q;
}

int ff_parse_rational(const char *s, ff_rational *r) {
    r->num = 0, r->den = 1;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || (*end != '/' && *end != ':')) return -1;
    const char *d0 = end + 1;
    long long d = strtoll(d0, &end, 10);
    if (errno || end == d0 || d <= 0 || n < 0) return -1;
    r->num = n, r->den = d;
    return 0;
}

/* ---------------------------------------------------------------- probing */

/* ffmpeg reads "file:PATH" as a plain file whatever PATH looks like ("a:b.mkv",
 * "-x.mp4"). */
static void file_url(char *buf, size_t size, const char *path) { snprintf(buf, size, "file:%s", path); }

/* A flat-writer value: "quoted with \\ escapes" or bare. */
static void flat_value(const char *v, char *out, size_t size) {
    size_t n = 0;
    if (*v != '"') {
        copy_str(out, size, v);
        return;
    }
    for (v++; *v && *v != '"' && n + 1 < size; v++) {
        if (*v == '\\' && v[1]) v++;
        out[n++] = *v;
    }
    out[n] = 0;
}

static double parse_seconds(const char *v) {
    char *end;
    double x = strtod(v, &end);
    return end == v || !isfinite(x) ? NAN : x;
}

/* One field "N.name" of a stream's side data: the "Stereo 3D" entry's type and
 * inverted flag (ffprobe prints side_data_type before the entry's other fields). */
static void stereo_side_data(ff_stream *s, const char *key, const char *val) {
    char *end;
    long k = strtol(key, &end, 10);
    if (end == key || *end != '.') return;
    key = end + 1;
    if (!strcmp(key, "side_data_type")) {
        if (!strcmp(val, "Stereo 3D")) s->stereo3d_entry = (int)k + 1;
    } else if (s->stereo3d_entry == k + 1) {
        if (!strcmp(key, "type")) copy_str(s->stereo3d, sizeof s->stereo3d, val);
        else if (!strcmp(key, "inverted")) s->stereo3d_inverted = atoi(val) != 0;
    }
}

static void probe_field(ff_media *m, const char *key, const char *val) {
    if (!strncmp(key, "format.", 7)) {
        key += 7;
        if (!strcmp(key, "format_name")) copy_str(m->format, sizeof m->format, val);
        else if (!strcmp(key, "duration")) m->duration = parse_seconds(val);
        else if (!strcmp(key, "start_time")) m->start_time = parse_seconds(val);
        return;
    }
    if (!strncmp(key, "chapters.chapter.", 17)) {
        long c = strtol(key + 17, NULL, 10);
        if (c + 1 > m->n_chapters) m->n_chapters = (int)(c + 1);
        return;
    }
    if (strncmp(key, "streams.stream.", 15)) return;
    char *end;
    long i = strtol(key + 15, &end, 10);
    if (end == key + 15 || *end != '.' || i < 0 || i >= FF_MAX_STREAMS) return;
    if (i + 1 > m->n_streams) {
        for (long j = m->n_streams; j <= i; j++) {
            memset(&m->streams[j], 0, sizeof m->streams[j]);
            m->streams[j].index = (int)j, m->streams[j].nb_frames = -1, m->streams[j].duration = NAN;
            m->streams[j].sar.den = m->streams[j].time_base.den = 1;
            m->streams[j].r_frame_rate.den = m->streams[j].avg_frame_rate.den = 1;
        }
        m->n_streams = (int)(i + 1);
    }
    ff_stream *s = &m->streams[i];
    key = end + 1;
    if (!strcmp(key, "index")) s->index = atoi(val);
    else if (!strcmp(key, "codec_type")) copy_str(s->type, sizeof s->type, val);
    else if (!strcmp(key, "codec_name")) copy_str(s->codec, sizeof s->codec, val);
    else if (!strcmp(key, "disposition.attached_pic")) s->attached_pic = atoi(val);
    else if (!strcmp(key, "tags.language")) copy_str(s->language, sizeof s->language, val);
    else if (!strcmp(key, "tags.title")) copy_str(s->title, sizeof s->title, val);
    else if (!strcmp(key, "tags.stereo_mode")) copy_str(s->stereo_mode, sizeof s->stereo_mode, val);
    else if (!strncmp(key, "side_data_list.side_data.", 25)) stereo_side_data(s, key + 25, val);
    else if (!strcmp(key, "width")) s->width = atoi(val);
    else if (!strcmp(key, "height")) s->height = atoi(val);
    else if (!strcmp(key, "r_frame_rate")) ff_parse_rational(val, &s->r_frame_rate);
    else if (!strcmp(key, "avg_frame_rate")) ff_parse_rational(val, &s->avg_frame_rate);
    else if (!strcmp(key, "time_base")) ff_parse_rational(val, &s->time_base);
    else if (!strcmp(key, "sample_aspect_ratio")) ff_parse_rational(val, &s->sar);
    else if (!strcmp(key, "nb_frames")) s->nb_frames = strcmp(val, "N/A") ? atol(val) : -1;
    else if (!strcmp(key, "duration")) s->duration = parse_seconds(val);
    else if (!strcmp(key, "color_space")) copy_str(s->color_space, sizeof s->color_space, strcmp(val, "unknown") ? val : "");
    else if (!strcmp(key, "color_primaries")) copy_str(s->color_primaries, sizeof s->color_primaries, strcmp(val, "unknown") ? val : "");
    else if (!strcmp(key, "color_transfer")) copy_str(s->color_transfer, sizeof s->color_transfer, strcmp(val, "unknown") ? val : "");
    else if (!strcmp(key, "color_range")) copy_str(s->color_range, sizeof s->color_range, strcmp(val, "unknown") ? val : "");
}

int ff_probe(const char *path, ff_media *m) {
    memset(m, 0, sizeof *m);
    m->duration = m->start_time = NAN, m->video = -1;
    char url[4200], what[4300];
    file_url(url, sizeof url, path);
    snprintf(what, sizeof what, "ffprobe on '%s'", path);
    const char *argv[] = {"ffprobe", "-v", "error", "-of", "flat", "-show_format", "-show_streams", "-show_chapters",
                          url, NULL};
    char *out;
    if (ff_run(argv, &out, what)) return -1;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        char val[1024];
        flat_value(eq + 1, val, sizeof val);
        probe_field(m, line, val);
    }
    free(out);
    for (int i = 0; i < m->n_streams && m->video < 0; i++)
        if (!strcmp(m->streams[i].type, "video") && !m->streams[i].attached_pic) m->video = i;
    return 0;
}

/* ---------------------------------------------------------------- decoding */

/* Reads one listing line into buf: 1, or 0 at end of file. */
static int aux_line(ff_decoder *d, char *buf, size_t size) {
    if (d->have_line) {
        copy_str(buf, size, d->line);
        d->have_line = 0;
        return 1;
    }
    return fgets(buf, (int)size, (FILE *)d->aux) != NULL;
}

int ff_decoder_open(ff_decoder *d, const char *path, int stream_index, double seek) {
    memset(d, 0, sizeof *d);
    d->p.pid = -1, d->p.in_fd = d->p.out_fd = d->p.aux_fd = d->p.err_fd = -1;
    d->sar = (ff_rational){1, 1};
    char url[4200], map[32], ss[64], what[4300];
    file_url(url, sizeof url, path);
    snprintf(map, sizeof map, "0:%d", stream_index);
    snprintf(ss, sizeof ss, "%.6f", seek);
    snprintf(what, sizeof what, "ffmpeg decoding '%s'", path);
    const char *argv[48];
    int n = 0;
    const char *head[] = {"ffmpeg", "-nostdin", "-v", "error", "-copyts"};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) argv[n++] = head[i];
    if (seek >= 0) argv[n++] = "-noaccurate_seek", argv[n++] = "-ss", argv[n++] = ss;
    const char *tail[] = {"-i", url,
                          /* output 0, fd 3: the listing (wrapped_avframe: a frame's packet is a
                           * few hundred bytes, its checksum is not used) */
                          "-map", map, "-fps_mode", "passthrough", "-enc_time_base", "-1", "-c:v", "wrapped_avframe",
                          "-f", "framecrc", "-flush_packets", "1", "pipe:3",
                          /* output 1, stdout: the frames */
                          "-map", map, "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-c:v", "rawvideo", "-f",
                          "rawvideo", "-flush_packets", "1", "pipe:1", NULL};
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) argv[n++] = tail[i];
    if (ff_spawn(&d->p, argv, FF_PIPE_OUT | FF_PIPE_AUX, what)) return -1;
    d->aux = fdopen(d->p.aux_fd, "r");
    if (!d->aux) {
        ff_kill(&d->p);
        return nn_fail("%s: fdopen: %s", what, strerror(errno));
    }
    d->p.aux_fd = -1; /* the FILE owns it now */
    char line[256];
    int tb_ok = 0;
    while (fgets(line, sizeof line, (FILE *)d->aux)) {
        if (line[0] != '#') {
            copy_str(d->line, sizeof d->line, line);
            d->have_line = 1;
            break;
        }
        long long a, b;
        if (sscanf(line, "#tb 0: %lld/%lld", &a, &b) == 2 && a > 0 && b > 0) d->tb = (ff_rational){a, b}, tb_ok = 1;
        else if (sscanf(line, "#dimensions 0: %lldx%lld", &a, &b) == 2) d->W = (int)a, d->H = (int)b;
        else if (sscanf(line, "#sar 0: %lld/%lld", &a, &b) == 2 && a > 0 && b > 0) d->sar = (ff_rational){a, b};
    }
    if (!d->have_line) {
        int rc = ff_wait(&d->p);
        fclose((FILE *)d->aux), d->aux = NULL;
        if (rc) return -1;
        return nn_fail("'%s': no video frame could be decoded", path);
    }
    if (!tb_ok || d->W <= 0 || d->H <= 0) {
        ff_decoder_close(d);
        return nn_fail("%s: unexpected listing header (no time base or frame size)", what);
    }
    return 0;
}

int ff_decoder_read(ff_decoder *d, uint8_t *rgb, int64_t *pts, int64_t *dur) {
    char line[256];
    if (!aux_line(d, line, sizeof line)) {
        /* the end: ffmpeg must have ended cleanly, and sent no more frame bytes */
        char extra;
        ssize_t r = read_full(d->p.out_fd, &extra, 1);
        fclose((FILE *)d->aux), d->aux = NULL;
        if (ff_wait(&d->p)) return -1;
        if (r != 0) return nn_fail("%s: frame data without a listing line after %ld frames", d->p.what, d->frames);
        return 0;
    }
    int stream;
    long long dts, p, du, size;
    if (sscanf(line, "%d, %lld, %lld, %lld, %lld", &stream, &dts, &p, &du, &size) != 5)
        return nn_fail("%s: unreadable listing line after %ld frames: %.80s", d->p.what, d->frames, line);
    if (p == INT64_MIN) p = d->frames ? d->last_pts + (d->last_dur > 0 ? d->last_dur : 1) : 0; /* no timestamp */
    const size_t bytes = (size_t)3 * d->W * d->H;
    ssize_t r = read_full(d->p.out_fd, rgb, bytes);
    if (r != (ssize_t)bytes) {
        int e = errno;
        char saved[512];
        snprintf(saved, sizeof saved, "%s", r < 0 && e ? strerror(e) : "the frame was cut short");
        if (ff_wait(&d->p) == 0) nn_fail("%s: frame %ld: %s", d->p.what, d->frames, saved);
        return -1;
    }
    d->last_pts = p, d->last_dur = du > 0 ? du : 0, d->frames++;
    *pts = p;
    if (dur) *dur = d->last_dur;
    return 1;
}

void ff_decoder_close(ff_decoder *d) {
    if (d->aux) fclose((FILE *)d->aux), d->aux = NULL;
    if (d->p.pid > 0) ff_kill(&d->p);
    else ff_wait(&d->p);
}

/* ---------------------------------------------------------------- encoding */

/* EBML (RFC 8794) pieces: element IDs are written as their bytes; sizes as 8-byte
 * vints (0x01 + 7 bytes; EBMLMaxSizeLength 8 allows it); unsigned integers as 8 bytes
 * big-endian. */
typedef struct {
    uint8_t b[512];
    size_t n;
} ebml_buf;

static void eb_id(ebml_buf *e, uint32_t id) {
    int len = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
    for (int i = len - 1; i >= 0; i--) e->b[e->n++] = (uint8_t)(id >> (8 * i));
}

static void eb_size(ebml_buf *e, uint64_t size) {
    e->b[e->n++] = 0x01;
    for (int i = 6; i >= 0; i--) e->b[e->n++] = (uint8_t)(size >> (8 * i));
}

static void eb_unknown_size(ebml_buf *e) {
    e->b[e->n++] = 0x01;
    for (int i = 0; i < 7; i++) e->b[e->n++] = 0xFF;
}

static void eb_uint(ebml_buf *e, uint32_t id, uint64_t v) {
    eb_id(e, id), eb_size(e, 8);
    for (int i = 7; i >= 0; i--) e->b[e->n++] = (uint8_t)(v >> (8 * i));
}

static void eb_bytes(ebml_buf *e, uint32_t id, const void *data, size_t len) {
    eb_id(e, id), eb_size(e, len);
    memcpy(e->b + e->n, data, len);
    e->n += len;
}

/* Opens a master element of known size: returns where its size goes. */
static size_t eb_open(ebml_buf *e, uint32_t id) {
    eb_id(e, id);
    size_t at = e->n;
    eb_size(e, 0);
    return at;
}

static void eb_close(ebml_buf *e, size_t at) {
    uint64_t size = e->n - at - 8;
    size_t save = e->n;
    e->n = at;
    eb_size(e, size);
    e->n = save;
}

/* swscale's name (out_color_matrix) of a colour space, or NULL when it has none. */
static const char *scale_matrix(const char *cs) {
    static const char *const map[][2] = {{"bt709", "bt709"},     {"bt470bg", "bt601"},     {"smpte170m", "bt601"},
                                         {"bt2020nc", "bt2020"}, {"bt2020c", "bt2020"},    {"smpte240m", "smpte240m"},
                                         {"fcc", "fcc"}};
    for (size_t i = 0; cs && i < sizeof map / sizeof *map; i++)
        if (!strcmp(cs, map[i][0])) return map[i][1];
    return NULL;
}

static int64_t gcd_i(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

int ff_encoder_open(ff_encoder *e, const char *path, const ff_encode_opts *o) {
    memset(e, 0, sizeof *e);
    e->p.pid = -1, e->p.in_fd = e->p.out_fd = e->p.aux_fd = e->p.err_fd = -1;
    e->W = o->W, e->H = o->H;
    char url[4200], what[4300], crf[32], tb[64], ts[32], fp[64];
    file_url(url, sizeof url, path);
    snprintf(what, sizeof what, "ffmpeg encoding '%s'", path);
    snprintf(crf, sizeof crf, "%g", o->crf);
    snprintf(tb, sizeof tb, "%" PRId64 "/%" PRId64, o->tb.num, o->tb.den);
    snprintf(ts, sizeof ts, "%" PRId64, o->tb.den);
    snprintf(fp, sizeof fp, "frame-packing=%d", o->frame_packing);
    const int x264 = !strcmp(o->codec, "libx264"), x265 = !strcmp(o->codec, "libx265"),
              mp4 = !strcmp(o->format, "mp4") || !strcmp(o->format, "mov");
    const char *argv[64];
    int n = 0;
    /* -xerror: ffmpeg 5.1 exits with status 0 when writing the trailer fails (a full
     * disk) unless told to stop at errors */
    const char *head[] = {"ffmpeg", "-nostdin", "-xerror", "-v", "error", "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0",
                          "-c:v", o->codec, "-preset", o->preset, "-crf", crf, "-pix_fmt", o->pix_fmt,
                          "-fps_mode", "passthrough", "-enc_time_base", tb};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) argv[n++] = head[i];
    char vf[160];
    const char *matrix = scale_matrix(o->color_space), *range = o->color_range && !strcmp(o->color_range, "pc") ? "pc" : "tv";
    if (matrix) {
        snprintf(vf, sizeof vf, "scale=out_color_matrix=%s:out_range=%s,format=%s", matrix, range, o->pix_fmt);
        argv[n++] = "-vf", argv[n++] = vf, argv[n++] = "-colorspace", argv[n++] = o->color_space;
        argv[n++] = "-color_range", argv[n++] = range;
        if (o->color_primaries && *o->color_primaries) argv[n++] = "-color_primaries", argv[n++] = o->color_primaries;
        if (o->color_transfer && *o->color_transfer) argv[n++] = "-color_trc", argv[n++] = o->color_transfer;
    }
    if (x264 && o->frame_packing >= 0) argv[n++] = "-x264-params", argv[n++] = fp;
    if (x265) argv[n++] = "-x265-params", argv[n++] = "log-level=error";
    if (mp4) {
        if (o->tb.num == 1) argv[n++] = "-video_track_timescale", argv[n++] = ts;
        argv[n++] = "-strict", argv[n++] = "unofficial";
    }
    argv[n++] = "-f", argv[n++] = o->format, argv[n++] = "-y", argv[n++] = url, argv[n] = NULL;
    if (ff_spawn(&e->p, argv, FF_PIPE_IN, what)) return -1;

    /* Matroska stream head */
    ebml_buf b = {.n = 0};
    size_t h = eb_open(&b, 0x1A45DFA3); /* EBML */
    eb_uint(&b, 0x4286, 1), eb_uint(&b, 0x42F7, 1), eb_uint(&b, 0x42F2, 4), eb_uint(&b, 0x42F3, 8);
    eb_bytes(&b, 0x4282, "matroska", 8), eb_uint(&b, 0x4287, 4), eb_uint(&b, 0x4285, 2);
    eb_close(&b, h);
    eb_id(&b, 0x18538067), eb_unknown_size(&b); /* Segment */
    h = eb_open(&b, 0x1549A966);                 /* Info */
    eb_uint(&b, 0x2AD7B1, 1);                     /* TimestampScale: 1 ns */
    eb_bytes(&b, 0x4D80, "deep3d", 6), eb_bytes(&b, 0x5741, "deep3d", 6);
    eb_close(&b, h);
    size_t tracks = eb_open(&b, 0x1654AE6B), entry = eb_open(&b, 0xAE);
    eb_uint(&b, 0xD7, 1), eb_uint(&b, 0x73C5, 1), eb_uint(&b, 0x83, 1), eb_uint(&b, 0x9C, 0);
    eb_bytes(&b, 0x86, "V_UNCOMPRESSED", 14);
    size_t video = eb_open(&b, 0xE0);
    eb_uint(&b, 0xB0, (uint64_t)o->W), eb_uint(&b, 0xBA, (uint64_t)o->H);
    /* ffmpeg's demuxer: SAR = H * DisplayWidth * wm / (W * DisplayHeight * hm), where wm = 2
     * for side-by-side and hm = 2 for top-bottom StereoModes (the display size of a
     * stereo track is one view's); this display size gives o->sar in every case */
    const int sbs = o->stereo_mode == 1 || o->stereo_mode == 11, tb_mode = o->stereo_mode == 2 || o->stereo_mode == 3;
    int64_t sn = o->sar.num > 0 ? o->sar.num : 1, sd = o->sar.den > 0 ? o->sar.den : 1, g = gcd_i(sn, sd);
    sn /= g, sd /= g;
    eb_uint(&b, 0x54B0, (uint64_t)(o->W * sn * (tb_mode ? 2 : 1)));
    eb_uint(&b, 0x54BA, (uint64_t)(o->H * sd * (sbs ? 2 : 1)));
    eb_uint(&b, 0x54B2, 0); /* DisplayUnit: pixels */
    eb_bytes(&b, 0x2EB524, "RGB\x18", 4);
    if (o->stereo_mode > 0) eb_uint(&b, 0x53B8, (uint64_t)o->stereo_mode);
    eb_close(&b, video), eb_close(&b, entry), eb_close(&b, tracks);
    if (write_full(e->p.in_fd, b.b, b.n)) {
        int err = errno;
        ff_encoder_abort(e);
        return nn_fail("%s: cannot write the stream header: %s", what, strerror(err));
    }
    return 0;
}

int ff_encoder_write(ff_encoder *e, const uint8_t *rgb, int64_t t_ns, int64_t dur_ns) {
    const size_t bytes = (size_t)3 * e->W * e->H;
    ebml_buf b = {.n = 0};
    eb_id(&b, 0x1F43B675), eb_unknown_size(&b); /* Cluster */
    eb_uint(&b, 0xE7, (uint64_t)(t_ns < 0 ? 0 : t_ns));
    eb_id(&b, 0xA0); /* BlockGroup: Block + BlockDuration */
    eb_size(&b, 1 + 8 + 4 + bytes + (dur_ns > 0 ? 1 + 8 + 8 : 0));
    eb_id(&b, 0xA1), eb_size(&b, 4 + bytes);
    b.b[b.n++] = 0x81;           /* track 1 */
    b.b[b.n++] = 0, b.b[b.n++] = 0; /* timestamp relative to the cluster */
    b.b[b.n++] = 0;               /* flags */
    int bad = write_full(e->p.in_fd, b.b, b.n) || write_full(e->p.in_fd, rgb, bytes);
    if (!bad && dur_ns > 0) {
        ebml_buf d = {.n = 0};
        eb_uint(&d, 0x9B, (uint64_t)dur_ns);
        bad = write_full(e->p.in_fd, d.b, d.n);
    }
    if (bad) {
        int err = errno;
        close_fd(&e->p.in_fd);
        if (ff_wait(&e->p) == 0) nn_fail("%s: frame %ld: %s", e->p.what, e->frames, strerror(err));
        return -1;
    }
    e->frames++;
    return 0;
}

int ff_encoder_close(ff_encoder *e) { return ff_wait(&e->p); }

void ff_encoder_abort(ff_encoder *e) { ff_kill(&e->p); }
