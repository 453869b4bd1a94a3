/* video_frames.c -- decode every frame of a video to RGB24 with FFmpeg
 * (the same swscale conversion glmv uses) and write them as one .npy array
 * [T, H, W, 3] uint8 plus the stream's frame rate, so that the reference
 * script can run transformers' video processor on exactly the frames glmv
 * sees. Not part of the build:
 *   cc -O2 -o video_frames scripts/video_frames.c $(pkg-config --cflags --libs libavformat libavcodec libswscale libavutil)
 *   ./video_frames clip.mp4 out.npy [KEEP]  # prints "frames fps width height nb_frames"
 * KEEP, a comma-separated list of frame indices, zeroes every other frame so
 * that the file compresses well (the reference only reads sampled frames).
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: video_frames VIDEO OUT.npy [KEEP]\n");
        return 2;
    }
    AVFormatContext *fmt = NULL;
    if (avformat_open_input(&fmt, argv[1], NULL, NULL) < 0 || avformat_find_stream_info(fmt, NULL) < 0) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    const AVCodec *codec = NULL;
    int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (si < 0) return 1;
    AVStream *st = fmt->streams[si];
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(dec, st->codecpar);
    if (avcodec_open2(dec, codec, NULL) < 0) return 1;
    int w = dec->width, h = dec->height;
    size_t fsz = (size_t)w * h * 3, cap = 64, n = 0;
    int stride = (w * 3 + 63) & ~63; /* swscale writes whole aligned blocks */
    unsigned char *all = malloc(cap * fsz), *rgb = aligned_alloc(64, (size_t)stride * (h + 1));
    struct SwsContext *sws = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    int eof = 0;
    for (;;) {
        int e = avcodec_receive_frame(dec, fr);
        if (e == 0) {
            sws = sws_getCachedContext(sws, w, h, fr->format, w, h, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
            uint8_t *dst[4] = {rgb};
            int ls[4] = {stride};
            sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, h, dst, ls);
            if (n == cap) all = realloc(all, (cap *= 2) * fsz);
            int keep = argc < 4;
            for (const char *k = argc == 4 ? argv[3] : ""; *k && !keep; k = strchr(k, ',') ? strchr(k, ',') + 1 : "")
                if ((size_t)atol(k) == n) keep = 1;
            if (keep)
                for (int y = 0; y < h; y++) memcpy(all + n * fsz + (size_t)y * w * 3, rgb + (size_t)y * stride, (size_t)w * 3);
            else memset(all + n * fsz, 0, fsz);
            n++;
            continue;
        }
        if (e == AVERROR_EOF) break;
        if (eof) break;
        if (av_read_frame(fmt, pkt) < 0) {
            avcodec_send_packet(dec, NULL);
            eof = 1;
            continue;
        }
        if (pkt->stream_index == si) avcodec_send_packet(dec, pkt);
        av_packet_unref(pkt);
    }
    FILE *f = fopen(argv[2], "wb");
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '|u1', 'fortran_order': False, 'shape': (%zu, %d, %d, 3), }", n, h, w);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    unsigned short len = (unsigned short)(hl + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&len, 2, 1, f);
    fwrite(hdr, 1, (size_t)hl, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(all, fsz, n, f);
    fclose(f);
    double fps = av_q2d(st->avg_frame_rate);
    printf("%zu %.17g %d %d %lld\n", n, fps, w, h, (long long)st->nb_frames);
    return 0;
}
