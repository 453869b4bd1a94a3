/* video.c -- decode a video with FFmpeg, sample frames as Glm4vVideoProcessor
 * does, resize each sampled frame as soon as it is decoded (so memory stays
 * within the pixel budget whatever the length), and patchify frame pairs.
 *
 * Frame indices count frames in presentation order from the start of the
 * stream, as PyAV's decode loop in transformers does. Long videos whose
 * sampled frames are far apart are read by seeking to the key frame before
 * each target instead of decoding everything in between.
 * ref: transformers Glm4vVideoProcessor.sample_frames / _preprocess
 */
#include "video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

/* far-apart targets (in seconds) are reached by seeking */
#define VIDEO_SEEK_GAP_S 3.0

void glmv_video_free(glmv_video *v) {
    if (!v) return;
    free(v->frame_indices);
    free(v->timestamps);
    free(v->rows);
    memset(v, 0, sizeof *v);
}

/* dedupe keeping order, then make the count even by repeating the last */
static int dedupe_even(int *idx, int n) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == 0 || idx[m - 1] != idx[i]) idx[m++] = idx[i]; /* non-decreasing */
    }
    if (m & 1) {
        idx[m] = idx[m - 1];
        m++;
    }
    return m;
}

int glmv_video_sample_indices(int total_frames, double video_fps, double duration,
                              double fps, double max_duration, int **out, int *n_out,
                              char *err) {
    if (total_frames <= 0) return glmv_errf(err, "video has no frames");
    if (!(video_fps > 0)) video_fps = 2.0; /* HF: metadata.fps or 2.0 */
    if (!(fps > 0)) fps = 2.0;
    if (!(max_duration > 0)) max_duration = 300.0;
    int max_idx = total_frames - 1;
    if (!(duration > 0)) duration = nearbyint(max_idx / video_fps) + 1; /* Python round: half-even */
    int n;
    int *idx;
    if (duration <= max_duration) {
        double nf = floor(duration * fps);
        if (nf > 1e7) return glmv_errf(err, "video too long: %.0f s", duration);
        n = (int)nf;
        idx = malloc(sizeof(int) * (size_t)(n + 2));
        if (!idx) return glmv_errf(err, "out of memory");
        for (int i = 0; i < n; i++) {
            double c = ceil(i * video_fps / fps);
            idx[i] = c > max_idx ? max_idx : (int)c;
        }
    } else {
        int num = (int)(max_duration * fps);
        if (num >= total_frames) {
            n = total_frames;
            idx = malloc(sizeof(int) * (size_t)(n + 2));
            if (!idx) return glmv_errf(err, "out of memory");
            for (int i = 0; i < n; i++) idx[i] = i;
        } else {
            n = num;
            idx = malloc(sizeof(int) * (size_t)(n + 2));
            if (!idx) return glmv_errf(err, "out of memory");
            /* np.linspace(0, duration, num, endpoint=True) */
            double step = num > 1 ? duration / (num - 1) : 0;
            for (int i = 0; i < n; i++) {
                double t = (num > 1 && i == num - 1) ? duration : i * step;
                double c = ceil(t * video_fps);
                idx[i] = c > max_idx ? max_idx : (int)c;
            }
        }
    }
    if (n == 0) { /* a clip shorter than one sampling period: HF yields nothing; take frame 0 twice */
        free(idx);
        idx = malloc(sizeof(int) * 2);
        if (!idx) return glmv_errf(err, "out of memory");
        idx[0] = idx[1] = 0;
        *out = idx;
        *n_out = 2;
        return 0;
    }
    *n_out = dedupe_even(idx, n);
    *out = idx;
    return 0;
}

/* ---- reading from memory ---- */

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} mem_reader;

static int mem_read(void *opaque, uint8_t *buf, int n) {
    mem_reader *m = opaque;
    size_t left = m->size - m->pos;
    if (left == 0) return AVERROR_EOF;
    if ((size_t)n > left) n = (int)left;
    memcpy(buf, m->data + m->pos, (size_t)n);
    m->pos += (size_t)n;
    return n;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence) {
    mem_reader *m = opaque;
    if (whence == AVSEEK_SIZE) return (int64_t)m->size;
    int64_t base = (whence & 3) == SEEK_CUR ? (int64_t)m->pos : (whence & 3) == SEEK_END ? (int64_t)m->size : 0;
    int64_t p = base + off;
    if (p < 0 || p > (int64_t)m->size) return AVERROR(EINVAL);
    m->pos = (size_t)p;
    return p;
}

typedef struct {
    AVFormatContext *fmt;
    AVIOContext *avio;
    mem_reader mem;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    int pkt_pending, drained;
    const char *name;
} vreader;

static void vreader_close(vreader *r) {
    if (r->sws) sws_freeContext(r->sws);
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    if (r->fmt) avformat_close_input(&r->fmt);
    if (r->avio) {
        av_freep(&r->avio->buffer);
        avio_context_free(&r->avio);
    }
}

static int av_fail(char *err, const char *name, const char *what, int e) {
    char buf[128];
    av_strerror(e, buf, sizeof buf);
    return glmv_errf(err, "%s: %s: %s", name, what, buf);
}

static int vreader_open(vreader *r, const char *path, const void *data, size_t size, char *err) {
    memset(r, 0, sizeof *r);
    r->name = path ? path : "video data";
    if (path && glmv_check_regular(path, "video", err)) return -1; /* a pipe would block the open */
    av_log_set_level(AV_LOG_QUIET);
    r->fmt = avformat_alloc_context();
    if (!r->fmt) return glmv_errf(err, "out of memory");
    if (!path) {
        if (!data || size == 0) return glmv_errf(err, "%s: empty", r->name);
        r->mem = (mem_reader){data, size, 0};
        unsigned char *buf = av_malloc(65536);
        if (!buf) return glmv_errf(err, "out of memory");
        r->avio = avio_alloc_context(buf, 65536, 0, &r->mem, mem_read, NULL, mem_seek);
        if (!r->avio) {
            av_free(buf);
            return glmv_errf(err, "out of memory");
        }
        r->fmt->pb = r->avio;
        r->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    int e = avformat_open_input(&r->fmt, path, NULL, NULL);
    if (e < 0) {
        r->fmt = NULL; /* freed by avformat_open_input on failure */
        return av_fail(err, r->name, "not a readable video", e);
    }
    e = avformat_find_stream_info(r->fmt, NULL);
    if (e < 0) return av_fail(err, r->name, "cannot read stream info", e);
    const AVCodec *codec = NULL;
    r->stream = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r->stream < 0 || !codec) {
        if (r->stream == AVERROR_DECODER_NOT_FOUND)
            return glmv_errf(err, "%s: no decoder for its video codec", r->name);
        return glmv_errf(err, "%s: no video stream (audio only?)", r->name);
    }
    AVStream *st = r->fmt->streams[r->stream];
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC)
        return glmv_errf(err, "%s: no video stream (only cover art)", r->name);
    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec) return glmv_errf(err, "out of memory");
    e = avcodec_parameters_to_context(r->dec, st->codecpar);
    if (e < 0) return av_fail(err, r->name, "bad codec parameters", e);
    r->dec->thread_count = 0;
    e = avcodec_open2(r->dec, codec, NULL);
    if (e < 0) return av_fail(err, r->name, "cannot open the decoder", e);
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->pkt || !r->frame) return glmv_errf(err, "out of memory");
    return 0;
}

/* Next decoded frame of the stream into r->frame: 1, 0 at the end, <0 error.
 * A packet the decoder cannot take yet (EAGAIN, with frame threading) is
 * kept in r->pkt and sent again after the decoder has given a frame back. */
static int vreader_next(vreader *r) {
    for (;;) {
        int e = avcodec_receive_frame(r->dec, r->frame);
        if (e == 0) return 1;
        if (e == AVERROR_EOF) return 0;
        if (e != AVERROR(EAGAIN)) return e;
        if (!r->pkt_pending) {
            e = av_read_frame(r->fmt, r->pkt);
            if (e < 0) {
                if (r->drained) return 0;
                r->drained = 1;
                avcodec_send_packet(r->dec, NULL); /* drain */
                continue;
            }
            if (r->pkt->stream_index != r->stream) {
                av_packet_unref(r->pkt);
                continue;
            }
            r->pkt_pending = 1;
        }
        e = avcodec_send_packet(r->dec, r->pkt);
        if (e == AVERROR(EAGAIN)) continue; /* receive first, then resend */
        /* sent, or a corrupt packet that is skipped, as players do */
        av_packet_unref(r->pkt);
        r->pkt_pending = 0;
    }
}

/* Count frames by reading packets (for containers without a frame count);
 * *end_s: where the last packet ends, in seconds from the stream's start (0: unknown). */
static int count_packets(vreader *r, double *end_s) {
    int n = 0;
    AVStream *st = r->fmt->streams[r->stream];
    double tb = av_q2d(st->time_base);
    int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0, end = AV_NOPTS_VALUE;
    while (av_read_frame(r->fmt, r->pkt) >= 0) {
        if (r->pkt->stream_index == r->stream) {
            n++;
            if (r->pkt->pts != AV_NOPTS_VALUE) {
                int64_t e = r->pkt->pts + (r->pkt->duration > 0 ? r->pkt->duration : 0);
                if (end == AV_NOPTS_VALUE || e > end) end = e;
            }
        }
        av_packet_unref(r->pkt);
    }
    *end_s = end != AV_NOPTS_VALUE && tb > 0 ? (double)(end - start) * tb : 0;
    av_seek_frame(r->fmt, r->stream, INT64_MIN, AVSEEK_FLAG_BACKWARD);
    avcodec_flush_buffers(r->dec);
    return n;
}

/* r->frame -> RGB u8 at its own size, rotated by `rot` degrees (0/90/180/270) */
static int frame_to_rgb(vreader *r, int rot, glmv_rgb *out, char *err) {
    AVFrame *f = r->frame;
    int w = f->width, h = f->height;
    r->sws = sws_getCachedContext(r->sws, w, h, f->format, w, h, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                                  NULL, NULL, NULL);
    if (!r->sws) return glmv_errf(err, "%s: cannot convert pixel format %d", r->name, f->format);
    /* swscale's SIMD paths write whole aligned blocks: convert into a padded,
     * aligned buffer, then copy the rows out tightly */
    int stride = (w * 3 + 63) & ~63;
    uint8_t *tmp = glmv_aligned_alloc((size_t)stride * (h + 1));
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!tmp || !rgb) {
        free(tmp);
        free(rgb);
        return glmv_errf(err, "out of memory");
    }
    uint8_t *dst[4] = {tmp, NULL, NULL, NULL};
    int ls[4] = {stride, 0, 0, 0};
    int got = sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, h, dst, ls);
    for (int y = 0; y < h; y++) memcpy(rgb + (size_t)y * w * 3, tmp + (size_t)y * stride, (size_t)w * 3);
    free(tmp);
    if (got != h) {
        free(rgb);
        return glmv_errf(err, "%s: pixel format conversion failed", r->name);
    }
    if (rot == 0) {
        *out = (glmv_rgb){w, h, rgb};
        return 0;
    }
    int ow = (rot == 180) ? w : h, oh = (rot == 180) ? h : w;
    uint8_t *o = malloc((size_t)w * h * 3);
    if (!o) {
        free(rgb);
        return glmv_errf(err, "out of memory");
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int nx, ny;
            if (rot == 90) nx = h - 1 - y, ny = x;        /* clockwise */
            else if (rot == 180) nx = w - 1 - x, ny = h - 1 - y;
            else nx = y, ny = w - 1 - x;                   /* 270 */
            memcpy(o + ((size_t)ny * ow + nx) * 3, rgb + ((size_t)y * w + x) * 3, 3);
        }
    free(rgb);
    *out = (glmv_rgb){ow, oh, o};
    return 0;
}

static int stream_rotation(AVStream *st) {
    const int32_t *m = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (!m) return 0;
    double a = -av_display_rotation_get(m); /* clockwise degrees */
    if (isnan(a)) return 0;
    int r = (int)lround(a / 90.0) * 90;
    r %= 360;
    if (r < 0) r += 360;
    return r;
}

int glmv_video_load(const char *path, const void *data, size_t size,
                    const glmv_video_params *vp, const glmv_image_params *ip, glmv_video *out,
                    char *err) {
    memset(out, 0, sizeof *out);
    double t0 = glmv_now_ms();
    vreader r;
    glmv_rgb *frames = NULL;
    int n_stored = 0, rc = -1;
    if (vreader_open(&r, path, data, size, err)) goto done;
    /* FFmpeg opens a PNG, JPEG or WebP file too (its "*_pipe" demuxers), and then
     * fails with "no frame" or "bad frame size 0x0": say what the file is instead */
    const char *fmt_name = r.fmt->iformat && r.fmt->iformat->name ? r.fmt->iformat->name : "";
    size_t fl = strlen(fmt_name);
    if ((fl > 5 && !strcmp(fmt_name + fl - 5, "_pipe")) || !strcmp(fmt_name, "image2")) {
        glmv_errf(err, "%s: an image file (FFmpeg reads it as %s), not a video", r.name, fmt_name);
        goto done;
    }
    AVStream *st = r.fmt->streams[r.stream];
    int w = r.dec->width, h = r.dec->height;
    int64_t max_px = vp->max_decode_pixels > 0 ? vp->max_decode_pixels : (int64_t)8192 * 8192;
    if (w <= 0 || h <= 0) {
        glmv_errf(err, "%s: bad frame size %dx%d", r.name, w, h);
        goto done;
    }
    if ((int64_t)w * h > max_px) {
        glmv_errf(err, "%s: frames of %dx%d exceed the limit of %lld pixels", r.name, w, h,
                  (long long)max_px);
        goto done;
    }
    double vfps = av_q2d(st->avg_frame_rate);
    if (!(vfps > 0 && vfps < 1000)) vfps = av_q2d(st->r_frame_rate);
    if (!(vfps > 0 && vfps < 1000)) vfps = 2.0;
    int64_t total = st->nb_frames;
    double end_s = 0;
    if (total <= 0) total = count_packets(&r, &end_s);
    if (total <= 0) {
        glmv_errf(err, "%s: the video stream has no frames", r.name);
        goto done;
    }
    /* Frames counted from the packets of a file cut short (Matroska, WebM) would make
     * a shorter, valid-looking video: the length its header states says otherwise. */
    double stated = st->duration > 0 && st->duration != AV_NOPTS_VALUE ? st->duration * av_q2d(st->time_base)
                    : r.fmt->duration > 0 ? (double)r.fmt->duration / AV_TIME_BASE : 0;
    if (end_s > 0 && stated > 0 && end_s < 0.95 * stated - 1.0 / vfps) {
        glmv_errf(err, "%s: the video is cut short or damaged: its frames end at %.1f s of the %.1f s "
                  "it states", r.name, end_s, stated);
        goto done;
    }
    if (total > 50000000) {
        glmv_errf(err, "%s: absurd frame count %lld", r.name, (long long)total);
        goto done;
    }
    int rot = vp->apply_rotation ? stream_rotation(st) : 0;

    /* the time range, in frames */
    int first = 0, last = (int)total; /* [first, last) */
    if (vp->start > 0) first = (int)GLMV_MIN((double)total, floor(vp->start * vfps));
    if (vp->end > 0) last = (int)GLMV_MIN((double)total, ceil(vp->end * vfps));
    if (last <= first) {
        if (vp->end > 0 && vp->end <= vp->start)
            glmv_errf(err, "%s: the range end %.2f s is not after its start %.2f s", r.name, vp->end,
                      vp->start);
        else if (vp->end > 0)
            glmv_errf(err, "%s: the range %.2f-%.2f s holds no frames (the video lasts %.2f s)",
                      r.name, vp->start, vp->end, total / vfps);
        else /* end 0: to the end of the video */
            glmv_errf(err, "%s: the start %.2f s is at or past the end (the video lasts %.2f s)",
                      r.name, vp->start, total / vfps);
        goto done;
    }
    int sub_total = last - first;
    int *idx = NULL, n = 0;
    if (glmv_video_sample_indices(sub_total, vfps, sub_total / vfps, vp->fps, vp->max_duration,
                                  &idx, &n, err))
        goto done;
    if (vp->max_frames > 0 && n > vp->max_frames) { /* spread the cap evenly */
        int cap = vp->max_frames & ~1;
        if (cap < 2) cap = 2;
        for (int j = 0; j < cap; j++) idx[j] = idx[(int64_t)j * n / cap];
        n = dedupe_even(idx, cap);
    }
    for (int i = 0; i < n; i++) idx[i] += first;
    out->frame_indices = idx;
    out->n_frames = n;
    out->total_frames = sub_total;
    out->video_fps = vfps;
    out->duration = sub_total / vfps;
    out->n_groups = n / 2;
    out->timestamps = malloc(sizeof(int) * (size_t)out->n_groups);
    if (!out->timestamps) {
        glmv_errf(err, "out of memory");
        goto done;
    }
    for (int k = 0; k < out->n_groups; k++) out->timestamps[k] = (int)(idx[2 * k] / vfps);

    int fw = (rot == 90 || rot == 270) ? h : w, fh = (rot == 90 || rot == 270) ? w : h;
    int factor = ip->patch_size * ip->merge_size, oh, ow;
    if (glmv_smart_resize(n, fh, fw, factor, ip->min_pixels, ip->max_pixels, &oh, &ow, err)) {
        char tmp[GLMV_ERR_SIZE];
        snprintf(tmp, sizeof tmp, "%s", err);
        glmv_errf(err, "%s: %s", r.name, tmp);
        goto done;
    }
    if (vp->max_tokens > 0) { /* a huge min_pixels would upscale every frame first */
        int64_t tok = (int64_t)out->n_groups * (oh / factor) * (ow / factor);
        if (tok > vp->max_tokens) {
            glmv_errc(err, GLMV_E_CONTEXT, "%s: %d frames at %dx%d make %lld vision tokens, more than the %lld the "
                      "context has room for (a longer context, or fewer frames: a lower fps, a frame cap or "
                      "a shorter span)", r.name, n, ow, oh, (long long)tok,
                      (long long)vp->max_tokens);
            goto done;
        }
    }
    frames = calloc((size_t)n, sizeof *frames);
    if (!frames) {
        glmv_errf(err, "out of memory");
        goto done;
    }

    /* decode in presentation order, keeping only the sampled frames */
    int64_t k = 0;      /* index of the frame in r.frame */
    int64_t k_seek = 0; /* k when the last seek was made */
    int want = 0;       /* next entry of idx to fill */
    double tb = av_q2d(st->time_base);
    int64_t start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    int seekable = !(r.fmt->iformat->flags & AVFMT_NOBINSEARCH) && (r.fmt->pb && r.fmt->pb->seekable);
    while (want < n) {
        /* duplicates of an already stored index (the even-count padding) */
        if (want > 0 && idx[want] == idx[want - 1]) {
            frames[want].w = frames[want - 1].w;
            frames[want].h = frames[want - 1].h;
            frames[want].rgb = malloc((size_t)frames[want].w * frames[want].h * 3);
            if (!frames[want].rgb) {
                glmv_errf(err, "out of memory");
                goto done;
            }
            memcpy(frames[want].rgb, frames[want - 1].rgb, (size_t)frames[want].w * frames[want].h * 3);
            n_stored = ++want;
            continue;
        }
        if (seekable && k >= 0 && (idx[want] - k) / vfps > VIDEO_SEEK_GAP_S && tb > 0) {
            int64_t ts = start_pts + (int64_t)((idx[want] / vfps) / tb);
            if (av_seek_frame(r.fmt, r.stream, ts, AVSEEK_FLAG_BACKWARD) >= 0) {
                avcodec_flush_buffers(r.dec);
                if (r.pkt_pending) av_packet_unref(r.pkt);
                r.pkt_pending = r.drained = 0;
                k_seek = k;
                k = -1; /* unknown until the next frame's timestamp */
            }
        }
        int e = vreader_next(&r);
        if (e < 0) {
            av_fail(err, r.name, "decoding failed", e);
            goto done;
        }
        if (e == 0) break;
        if (k < 0) {
            int64_t pts = r.frame->best_effort_timestamp;
            k = pts == AV_NOPTS_VALUE ? idx[want] : llround((pts - start_pts) * tb * vfps);
            if (k < 0) k = 0;
            /* a seek that did not move forward (broken index or timestamps) would be
             * tried again and again: decode straight through from here on */
            if (k <= k_seek) seekable = 0;
        }
        if (k == idx[want] || k > idx[want]) {
            /* a stream may change its frame size midway: the limit holds for every frame */
            if ((int64_t)r.frame->width * r.frame->height > max_px || r.frame->width <= 0 ||
                r.frame->height <= 0) {
                glmv_errf(err, "%s: a frame of %dx%d (the stream changes size) exceeds the limit of "
                          "%lld pixels", r.name, r.frame->width, r.frame->height, (long long)max_px);
                goto done;
            }
            glmv_rgb full;
            if (frame_to_rgb(&r, rot, &full, err)) goto done;
            int e2 = glmv_image_resize(&full, ow, oh, &frames[want], err);
            glmv_rgb_free(&full);
            if (e2) goto done;
            n_stored = ++want;
        }
        k++;
    }
    if (n_stored == 0) {
        glmv_errf(err, "%s: no frame could be decoded", r.name);
        goto done;
    }
    if (n_stored < n) {
        /* The stream ended before its stated length. A few frames short at the very end
         * (a frame count that overstates, a last frame that fails) is common, and the last
         * decoded frame stands in for the missing ones. More is a file cut short or
         * damaged: answering from the part that decodes would describe a different video. */
        int64_t reached = k > 0 ? k - 1 : 0, missing = idx[n - 1] - reached;
        if (missing > 1 + sub_total / 20) {
            glmv_errf(err, "%s: the video is cut short or damaged: it decodes up to %.1f s of the %.1f s "
                      "it states (%d of %d sampled frames)", r.name, (double)(reached - first) / vfps,
                      sub_total / vfps, n_stored, n);
            goto done;
        }
        glmv_log(1, "%s: only %d of %d sampled frames could be decoded; repeating the last", r.name,
                 n_stored, n);
        for (; n_stored < n; n_stored++) {
            frames[n_stored].w = ow;
            frames[n_stored].h = oh;
            frames[n_stored].rgb = malloc((size_t)ow * oh * 3);
            if (!frames[n_stored].rgb) {
                glmv_errf(err, "out of memory");
                goto done;
            }
            memcpy(frames[n_stored].rgb, frames[n_stored - 1].rgb, (size_t)ow * oh * 3);
        }
    }
    double t1 = glmv_now_ms();
    out->decode_ms = t1 - t0;
    int p = ip->patch_size, tp = ip->temporal_patch_size;
    out->grid[0] = (n + tp - 1) / tp;
    out->grid[1] = oh / p;
    out->grid[2] = ow / p;
    size_t n_rows = (size_t)out->grid[0] * out->grid[1] * out->grid[2];
    out->rows = malloc(glmv_mul_size(n_rows, (size_t)3 * tp * p * p));
    if (!out->rows) {
        glmv_errf(err, "out of memory for %zu patch rows", n_rows);
        goto done;
    }
    if (glmv_patchify_u8(frames, n, ip, out->rows, err)) goto done;
    glmv_patch_lut_init(ip, &out->lut);
    out->preprocess_ms = glmv_now_ms() - t1;
    rc = 0;
done:
    if (frames) {
        for (int i = 0; i < n_stored; i++) glmv_rgb_free(&frames[i]);
        free(frames);
    }
    vreader_close(&r);
    if (rc) glmv_video_free(out);
    return rc;
}

char *glmv_video_prompt(const glmv_video *v, int merge_size) {
    static const char *bo = "<|begin_of_image|>", *im = "<|image|>", *eo = "<|end_of_image|>";
    int64_t per = (int64_t)v->grid[1] * v->grid[2] / (merge_size * merge_size);
    size_t cap = (size_t)v->n_groups * (strlen(bo) + strlen(eo) + 16 + (size_t)per * strlen(im)) + 1;
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    for (int k = 0; k < v->n_groups; k++) {
        p += sprintf(p, "%s", bo);
        for (int64_t i = 0; i < per; i++) {
            memcpy(p, im, strlen(im));
            p += strlen(im);
        }
        p += sprintf(p, "%s%d", eo, v->timestamps[k]);
    }
    *p = 0;
    return s;
}
