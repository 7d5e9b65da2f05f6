#!/usr/bin/env bash
# Draws a chart of throughput (messages per second) and allocations (bytes per message) from BenchmarkDotNet
# results: the *-report-plot.csv files the suite's PlotExporter writes next to BenchmarkDotNet's own exports.
# Needs gnuplot (Debian: apt-get install gnuplot-nox).
# Usage: benchmarks/plot.sh [results dir] [output .svg]
#   defaults: BenchmarkDotNet.Artifacts/results and benchmarks/results/chart.svg
set -euo pipefail
in="${1:-BenchmarkDotNet.Artifacts/results}"
out="${2:-$(dirname "$0")/results/chart.svg}"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
shopt -s nullglob
files=("$in"/*-report-plot.csv)
[ ${#files[@]} -gt 0 ] || { echo "no *-report-plot.csv in $in: run the benchmarks first" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
data=$(mktemp)
trap 'rm -f "$data"' EXIT
# Latency rows are paced (their time per message is the offered rate, not a throughput): left out here.
for f in "${files[@]}"; do tail -n +2 "$f"; done \
  | grep -v '^LatencyBenchmarks;' \
  | awk -F';' '{ c = $1; sub(/Benchmarks$/, "", c); printf "\"%s: %s\"\t%s\t%s\n", c, $3, $5, $6 }' > "$data"
gnuplot <<GNUPLOT
set terminal svg size 1400,1000 dynamic font 'sans,11' background '#ffffff'
set output '$out'
set datafile separator '\t'
set multiplot layout 2,1 title "MessageQueue benchmark suite: medians of one run (see benchmarks/README.md)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.8
set xtics rotate by -35 left noenhanced font ',9'
set logscale y
set grid ytics
set key off
set bmargin 12
set ylabel "messages per second (log)"
plot '$data' using 2:xtic(1) lc rgb '#3b7dd8', '' using 0:2:(sprintf('%.3g', \$2)) with labels offset 0,0.7 font ',8'
set ylabel "bytes allocated per message (log; 0 drawn at 1)"
plot '$data' using (\$3 < 1 ? 1 : \$3):xtic(1) lc rgb '#d8783b', '' using 0:(\$3 < 1 ? 1 : \$3):(sprintf('%.0f B', \$3)) with labels offset 0,0.7 font ',8'
unset multiplot
GNUPLOT
echo "wrote $out"
