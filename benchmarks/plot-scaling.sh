#!/usr/bin/env bash
# Draws how throughput changes as a broker grows (issue 16, point 9) from the interleaved runner's table of
# ScalingBenchmarks: one panel per category (queues, consumers per queue, backlog), messages per second from each
# row's median time per message, with the median ratio to the category's first row over the bars.
# Needs gnuplot (Debian: apt-get install gnuplot-nox).
# Usage: benchmarks/plot-scaling.sh [table .md] [output .svg]
#   defaults: benchmarks/results/interleaved-scaling.md and benchmarks/results/scaling.svg
set -euo pipefail
here="$(dirname "$0")"
in="${1:-$here/results/interleaved-scaling.md}"
out="${2:-$here/results/scaling.svg}"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
[ -f "$in" ] || { echo "no table at $in: run the interleaved runner on ScalingBenchmarks first (benchmarks/README.md)" >&2; exit 1; }
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
# Table rows: | category | row | median per message | CPU | ratio (range) | ... ; times are "123.4 ns" or "1.23 us".
awk -F'|' -v dir="$data" '
  function trim(s) { gsub(/^ +| +$/, "", s); return s }
  NF > 6 && $2 !~ /Category|---/ {
    cat = trim($2); row = trim($3); split(trim($4), t, " ")
    ns = t[1] * (t[2] == "us" ? 1000 : t[2] == "ms" ? 1000000 : 1)
    ratio = trim($6); sub(/ .*/, "", ratio); sub(/\(baseline\)/, "", row); row = trim(row)
    file = dir "/" (cat == "queues" ? 1 : cat == "consumers per queue" ? 2 : 3) ".tsv"
    printf "\"%s\"\t%.0f\t%s\n", row, 1e9 / ns, ratio >> file
  }' "$in"
for i in 1 2 3; do [ -s "$data/$i.tsv" ] || { echo "the table at $in lacks a category (panel $i)" >&2; exit 1; }; done
mkdir -p "$(dirname "$out")"
gnuplot <<GNUPLOT
set terminal svg size 1200,420 dynamic font 'sans,11' background '#ffffff'
set output '$out'
set datafile separator '\t'
set multiplot layout 1,3 title "MessageQueue in memory: throughput as the broker grows (medians of interleaved rounds; ratio to the first bar above each bar)"
set style data histograms
set style fill solid 0.85 border -1
set boxwidth 0.6
set xtics rotate by -25 left font ',9' noenhanced
set bmargin 5
set yrange [0:*]
set ylabel 'messages per second'
set format y '%.1s%c'
set grid ytics
unset key
set title 'queues, one handler each'
plot '$data/1.tsv' using 2:xtic(1) lc rgb '#4477aa', '' using 0:(\$2*1.04):3 with labels
set title 'handlers on one queue'
plot '$data/2.tsv' using 2:xtic(1) lc rgb '#228833', '' using 0:(\$2*1.04):3 with labels
set title 'backlog (pull + ack)'
plot '$data/3.tsv' using 2:xtic(1) lc rgb '#ccbb44', '' using 0:(\$2*1.04):3 with labels
unset multiplot
GNUPLOT
echo "wrote $out"
