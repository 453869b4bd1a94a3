#!/usr/bin/env bash
# device_ffmpeg.sh OUT.tar.xz -- FFmpeg for the GPU machine, which has none: Debian bookworm's own
# FFmpeg source (the version of this machine's libavcodec59, so the same sonames and symbol
# versions glmv's binaries were linked against), built with only the demuxers, decoders and
# parsers of common clips (H.264, HEVC, VP8/9, MPEG-4 and -2, MJPEG; mp4/mov, mkv/webm, avi, ts,
# flv) and no external library: 6.8 MB of shared libraries (1.8 MB as .tar.xz) where Debian's
# libraries and what they pull in weigh 170 MB. On the GPU machine, extract it over the device
# bundle's stand-ins (scripts/device_batch.sh video does):
#   (cd BUNDLE/lib && rm -f libavcodec.so.59 libavformat.so.59 libavutil.so.57 libswscale.so.6)
#   tar -C BUNDLE -xJf OUT.tar.xz
# Decoding is FFmpeg's own, so frames are the same bits as with Debian's libraries
# (test_video parity_with_hf passes with these; AV1, image formats and other codecs are absent).
# Needs deb-src sources for bookworm (added here if missing), nasm, and a few minutes on 2 cores.
set -euo pipefail
out=$(realpath -m "${1:?usage: device_ffmpeg.sh OUT.tar.xz}")
ver=$(dpkg-query -W -f '${Version}' libavcodec59)
work=$(mktemp -d)
if ! grep -rqs deb-src /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        >/etc/apt/sources.list.d/glmv-src.sources
    apt-get update -qq
fi
command -v nasm >/dev/null || apt-get install -y -qq nasm
cd "$work"
apt-get source --download-only "ffmpeg=$ver" >/dev/null
tar xf ffmpeg_*.orig.tar.xz
cd ffmpeg-*/
./configure --prefix="$work/inst" --disable-everything --enable-shared --disable-static --disable-programs \
    --disable-doc --disable-avdevice --disable-avfilter --disable-postproc --disable-network --disable-autodetect \
    --enable-swscale --enable-swresample --enable-protocol=file --enable-demuxer=mov,matroska,avi,mpegts,flv \
    --enable-decoder=h264,hevc,mpeg4,vp8,vp9,mjpeg,mpeg2video,mpeg1video,h263,theora \
    --enable-parser=h264,hevc,mpeg4video,vp8,vp9,mjpeg,mpegvideo \
    --enable-bsf=h264_mp4toannexb,hevc_mp4toannexb,vp9_superframe_split >/dev/null
make -j"$(nproc)" >/dev/null
make install >/dev/null
tar -C "$work/inst" --exclude=pkgconfig -cJf "$out" lib
rm -rf "$work"
echo "$out: FFmpeg $ver, $(du -h "$out" | cut -f1)"
