#!/bin/sh
# The worker contract's worked example (splitter/README.md, "Workers"): upscales one segment
# 2x with x264 and writes exactly the frames the segment owns. The tests run this script.
#
#   upscale-worker.sh SEGMENT_FILE LEAD_IN_FRAMES FRAMES OUTPUT_FILE
#
# SEGMENT_FILE is the split's segments/NNNNNN.*; LEAD_IN_FRAMES and FRAMES are the segment's
# `lead_in_frames` and `frames` in manifest.json; OUTPUT_FILE is PROCESSED/NNNNNN.mkv (any
# extension ffmpeg can write).
set -eu
segment=$1
lead_in=$2
frames=$3
output=$4
last=$((lead_in + frames - 1))
# -noautorotate: the picture stays as stored; `join` puts the source's rotation back.
# select: decoded frames lead_in..last, the ones the segment owns (context frames and
# trailing frames dropped). setpts: a constant 25 fps, whatever the source's timing was;
# `join` gives every frame the source's timestamp back. -fps_mode passthrough: no frame
# duplicated or dropped.
exec ffmpeg -nostdin -hide_banner -loglevel error -y -noautorotate -i "$segment" \
  -map 0:v:0 -vf "select='between(n\,$lead_in\,$last)',setpts=N/(25*TB),scale=iw*2:ih*2" \
  -fps_mode passthrough -c:v libx264 -preset veryfast -crf 20 "$output"
