/* Video through FFmpeg: the ffmpeg and ffprobe programs (Debian package `ffmpeg`) run
 * as subprocesses, raw frames travel on pipes, no frame is ever written to disk.
 *
 * Source: the FFmpeg 5.1 command-line tools and their documentation (ffmpeg(1),
 * ffprobe(1), ffmpeg-formats(5): the rawvideo, framecrc, concat and matroska formats).
 * Nothing here links libav*; what the installed programs can do is what we get.
 *
 * Frames are packed RGB, 8 bits per channel (ffmpeg's rgb24): row-major, rows of 3 W
 * bytes with no padding, top row first, 3 W H bytes per frame.
 *
 * Timestamps: a decoded frame keeps the presentation timestamp of the input stream, as
 * an integer count of the stream's time base (ff_rational tb: seconds per tick), so a
 * variable frame rate survives exactly. Frames go to the encoder with nanosecond
 * timestamps (Matroska with TimestampScale 1 ns, written by us, see ff_encoder_open),
 * and the encoder is told the source time base, which rounds them back to ticks.
 *
 * Errors: every function returns 0 (or a pointer / count) on success and -1 after
 * nn_fail() with one line: what was run on which file, ffmpeg's exit status and the
 * last line it printed (ffmpeg runs with -v error, so that line is its reason). A
 * missing program is "ffmpeg not found in PATH (Debian: apt-get install ffmpeg)".
 * Nothing prints. The programs are looked up in PATH; $DEEP3D_FFMPEG and
 * $DEEP3D_FFPROBE name others.
 *
 * Signals: children start with SIGPIPE at its default action even when the caller
 * ignores it (a caller writing to pipes should ignore SIGPIPE, then a dead child is an
 * EPIPE error, not a dead parent). Every pipe end we keep is close-on-exec, so a child
 * never holds another child's pipe open. */
#ifndef DATA_FFMPEG_H
#define DATA_FFMPEG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A rational number num/den (den > 0), as ffmpeg prints them ("24000/1001"). */
typedef struct ff_rational {
    int64_t num, den;
} ff_rational;

/* ---------------------------------------------------------------- processes */

/* A running child with up to three pipes: its stdin (in_fd, ours to write), its stdout
 * (out_fd, ours to read) and its fd 3 (aux_fd, ours to read); -1 where not asked for.
 * Its stderr goes to an unnamed temporary file, read back by ff_wait. */
typedef struct ff_proc {
    pid_t pid;
    int in_fd, out_fd, aux_fd, err_fd;
    char what[256]; /* "ffmpeg (decoding 'clip.mkv')": the subject of error messages */
} ff_proc;

enum { FF_PIPE_IN = 1, FF_PIPE_OUT = 2, FF_PIPE_AUX = 4 };

/* The program to run: "ffmpeg" or "ffprobe", or $DEEP3D_FFMPEG / $DEEP3D_FFPROBE. */
const char *ff_program(const char *name);

/* 0 when `name` (ff_program's) can be run: an executable file in PATH (or the path
 * itself when it contains '/'); else -1 + "NAME not found in PATH (Debian: apt-get
 * install ffmpeg)". */
int ff_check_program(const char *name);

/* Starts argv (argv[0] through ff_program) with the pipes of `pipes` (FF_PIPE_*). what
 * names the job in later errors. Errors: the program is missing, pipe or spawn
 * failed. */
int ff_spawn(ff_proc *p, const char *const *argv, int pipes, const char *what);

/* Closes our pipe ends, waits for the child and frees its stderr file. 0 when it
 * exited with status 0; otherwise -1 + "WHAT failed (exit status N): LAST LINE" or
 * "WHAT killed by signal N". Safe on a zeroed or already finished ff_proc (0). */
int ff_wait(ff_proc *p);

/* Ends the child now (SIGKILL) and reaps it; no error. For giving up half-way. */
void ff_kill(ff_proc *p);

/* Runs argv to the end and returns its stdout in *out (malloc'd, NUL-terminated; may be
 * NULL to discard). Errors: as ff_spawn and ff_wait. */
int ff_run(const char *const *argv, char **out, const char *what);

/* ---------------------------------------------------------------- probing */

#define FF_MAX_STREAMS 64

typedef struct ff_stream {
    int index;          /* the container's stream index */
    char type[16];      /* codec_type: video, audio, subtitle, attachment, data */
    char codec[32];     /* codec_name ("h264", "aac", "subrip"), "" if unknown */
    int attached_pic;   /* disposition.attached_pic: cover art, not the movie */
    char language[16];  /* tags.language, "" if none */
    char title[256];    /* tags.title, "" if none */
    /* video streams: coded size (before any rotation ffmpeg applies), rates, time
     * base, pixel aspect ratio ({0, 1} when unknown), frame count (-1 when the
     * container does not say), duration in seconds (NAN if unknown) */
    int width, height;
    ff_rational r_frame_rate, avg_frame_rate, time_base, sar;
    long nb_frames;
    double duration;
    /* colour: ffprobe's names ("bt709", "tv"), "" when unknown or unspecified */
    char color_space[24], color_primaries[24], color_transfer[24], color_range[8];
    /* stereo metadata, "" when absent: the Matroska StereoMode as ffmpeg names it in
     * the stream tag stereo_mode ("left_right", "top_bottom", "right_left",
     * "bottom_top", "mono", ...), and the type of the stream's "Stereo 3D" side data
     * (libavutil/stereo3d.c's names: "2D", "side by side", "top and bottom", ...) with
     * its inverted flag (1: right view first) */
    char stereo_mode[32], stereo3d[48];
    int stereo3d_inverted;
    int stereo3d_entry; /* while parsing: 1 + the index of that side data entry, 0 if none */
} ff_stream;

/* What ffprobe -show_format -show_streams -show_chapters says about a file. Times in
 * seconds, NAN when ffprobe gives none. */
typedef struct ff_media {
    char format[64];       /* format_name: "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2" */
    double duration, start_time;
    int n_streams;         /* entries of streams[] (at most FF_MAX_STREAMS) */
    ff_stream streams[FF_MAX_STREAMS];
    int n_chapters;
    int video;             /* the video stream to convert, as a position in streams[]:
                            * the first video stream that is not cover art; -1 if none */
} ff_media;

/* Runs `ffprobe -v error -of flat -show_format -show_streams -show_chapters PATH`
 * and fills m. ffprobe's flat writer prints one key=value line per field ("streams.
 * stream.0.codec_type="video""), which is parsed here without a JSON library.
 * Errors: ffprobe missing or failing ("ffprobe failed on 'x': Invalid data found when
 * processing input"). A file without a video stream is not an error (m->video = -1). */
int ff_probe(const char *path, ff_media *m);

/* ---------------------------------------------------------------- decoding */

/* A video stream decoded by ffmpeg into rgb24 frames, one at a time, each with its
 * presentation timestamp. One ffmpeg process writes two outputs of the same decoded
 * frames: a framecrc listing (ffmpeg-formats(5); one line per frame: stream, dts, pts,
 * duration, size, checksum, in the input stream's time base because of
 * -enc_time_base -1) on fd 3, and the rawvideo frames on stdout. The listing comes
 * first for every frame, so reading a line, then a frame, never deadlocks. Its header
 * gives the frame size after ffmpeg's own rotation (#dimensions), the time base (#tb)
 * and the pixel aspect ratio (#sar). -copyts keeps the container's timestamps; every
 * decoded frame is passed on (-fps_mode passthrough: none dropped or repeated). */
typedef struct ff_decoder {
    ff_proc p;
    void *aux;             /* FILE * on p.aux_fd */
    char line[256];        /* the first frame's listing line, read with the header */
    int have_line;
    int W, H;              /* frame size */
    ff_rational tb, sar;   /* time base of the timestamps; pixel aspect (1/1 if unset) */
    int64_t last_pts, last_dur;
    long frames;           /* frames read so far */
} ff_decoder;

/* Starts decoding stream `stream_index` (the container's index) of path. seek >= 0:
 * start near that time in seconds on the container's clock (-ss with
 * -noaccurate_seek: from the keyframe at or before it; the caller skips frames by
 * timestamp), else from the beginning. Reads the listing's header, which ffmpeg writes
 * when the first frame is decoded: a file with no decodable frame fails here with
 * ffmpeg's reason. Errors: ffmpeg missing or failing, no frame. */
int ff_decoder_open(ff_decoder *d, const char *path, int stream_index, double seek);

/* The next frame: rgb (3 W H bytes) and its timestamp and duration in d->tb ticks (dur
 * may be 0 when ffmpeg does not know it). Returns 1 for a frame, 0 at the end of the
 * stream (after checking that ffmpeg exited cleanly), -1 on error (ffmpeg failed, a
 * frame cut short). */
int ff_decoder_read(ff_decoder *d, uint8_t *rgb, int64_t *pts, int64_t *dur);

/* Stops ffmpeg if it is still running and frees everything (safe on a zeroed one). */
void ff_decoder_close(ff_decoder *d);

/* ---------------------------------------------------------------- encoding */

/* How a video segment is encoded. */
typedef struct ff_encode_opts {
    int W, H;              /* frame size */
    ff_rational sar;       /* pixel aspect ratio to signal (each at most 255 after
                            * reduction: Matroska's display size carries it) */
    int stereo_mode;       /* Matroska StereoMode of the frames: 0 = none (mono), 1 =
                            * side by side left first, 3 = top-bottom left first; it
                            * travels to the output as ffmpeg's stereo side data */
    const char *codec;     /* "libx264" or "libx265" */
    double crf;
    const char *preset;    /* x264/x265 preset: "medium" */
    const char *pix_fmt;   /* "yuv420p" */
    int frame_packing;     /* libx264 frame-packing SEI arrangement type (H.264 D.2.26:
                            * 3 side-by-side, 4 top-bottom), or -1 for none */
    ff_rational tb;        /* the encoder's time base (the source's): -enc_time_base */
    /* colour of the source, ffprobe's names or "" (then ffmpeg's defaults: BT.601
     * matrix, limited range, nothing signalled, as the decoder assumed for it). When
     * color_space is set, rgb24 is converted with that matrix (ffmpeg's scale filter,
     * out_color_matrix) and the range, and all four are signalled in the stream, so the
     * colours come back as they were decoded. */
    const char *color_space, *color_primaries, *color_transfer, *color_range;
    const char *format;    /* container of the output file: "mp4" (segments), ... */
} ff_encode_opts;

/* An ffmpeg encoder reading our frames on its stdin. */
typedef struct ff_encoder {
    ff_proc p;
    int W, H;
    long frames;
} ff_encoder;

/* Starts `ffmpeg -xerror -f matroska -i pipe:0 -c:v CODEC ... -f FORMAT PATH` (-xerror:
 * without it ffmpeg 5.1 exits with status 0 after failing to write the end of the file)
 * and writes the head of a Matroska stream (EBML header, Segment and Cluster of unknown size: the
 * live-streaming form of RFC 9559 that ffmpeg's demuxer reads from a pipe) with one
 * V_UNCOMPRESSED track, ColourSpace "RGB" 24 (rgb24), StereoMode and a display size
 * that gives o->sar, TimestampScale 1 ns. The output gets -fps_mode passthrough (one
 * output frame per input frame, timestamps kept), -enc_time_base o->tb and, for mp4,
 * the same track timescale and -strict unofficial (so the st3d box of the stereo
 * side data is written). Errors: ffmpeg missing, bad options, a write failing. */
int ff_encoder_open(ff_encoder *e, const char *path, const ff_encode_opts *o);

/* Sends one frame (3 W H bytes) shown at t_ns nanoseconds for dur_ns (0 if unknown):
 * a Cluster holding one BlockGroup (Block + BlockDuration). Errors: ffmpeg died
 * (its reason), short write. */
int ff_encoder_write(ff_encoder *e, const uint8_t *rgb, int64_t t_ns, int64_t dur_ns);

/* Ends the stream and waits for ffmpeg to finish the file. Errors: ffmpeg failed (a
 * full disk: "... No space left on device"). */
int ff_encoder_close(ff_encoder *e);

/* Stops the encoder without finishing (SIGKILL); its file is left as it is. */
void ff_encoder_abort(ff_encoder *e);

/* ---------------------------------------------------------------- time */

/* pts ticks of tb in nanoseconds, rounded to nearest, without overflow for any
 * |pts * tb.num| < 2^63. */
int64_t ff_ticks_to_ns(int64_t pts, ff_rational tb);

/* "num/den" -> r; "0/0", "N/A" and junk give {0, 1} and -1. */
int ff_parse_rational(const char *s, ff_rational *r);

#endif
