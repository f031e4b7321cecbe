#!/usr/bin/env python3
"""Checks keel `Cache` against the README's hit-ratio goals over several hash seeds.

usage: scripts/cache-seeds.py TRACES_README RUN.md...

Each RUN.md is `compare cache` output at one `--seed`, with the policies "keel Cache",
"moka, at capacity", quick_cache and "keel Lru" (the default set). The goals are the ones
`scripts/cache-score.py` scores: within 1 point of the best libCacheSim reference, 0.5 of
quick_cache, 0.5 of moka held to capacity and, on synthetic rows where LRU is the best of
those three, 1 of LRU. A hash seed moves every cache's miss ratio (moka's by up to 1.6 points
on one row here), so one seed can show a miss that is only that seed's luck, for keel or for a
peer. This prints every row that misses a goal at some seed: how many seeds it misses at, and
the miss on the means over all seeds; then the rows that miss on the means.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_tables import GOALS, best_references, goal_misses, parse  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    best = best_references(sys.argv[1])
    traces = {w for (w, _) in best}
    runs = [parse(p) for p in sys.argv[2:]]
    policies = ['keel Cache', 'moka, at capacity', 'quick_cache', 'keel Lru']
    print(f"{len(runs)} seeds. \"on the means\" gives keel's gap in points to each peer whose goal"
          " the means miss; \"seeds\" counts the seeds at which the row misses any goal.\n")
    print('| workload | size | keel Cache (mean) | moka (mean) | quick_cache | keel Lru | seeds | on the means |')
    print('|---|---|---|---|---|---|---|---|')
    failing, partial = [], 0
    for key in runs[0]:
        if not all(key in run and all(p in run[key] for p in policies) for run in runs):
            partial += 1
            continue
        b = best.get(key)
        synthetic = key[0] not in traces
        seeds = sum(1 for run in runs if goal_misses(run[key]['keel Cache'], run[key], b, synthetic))
        if not seeds:
            continue
        mean = {p: statistics.mean(run[key][p] for run in runs) for p in policies}
        on_means = goal_misses(mean['keel Cache'], mean, b, synthetic)
        verdict = ', '.join(f"{g} +{(v + GOALS[g]) * 100:.2f}" for g, v in on_means.items()) or 'meets'
        if on_means:
            failing.append(key)
        print(f"| {key[0]} | {key[1]} | {mean['keel Cache']:.4f} | {mean['moka, at capacity']:.4f} |"
              f" {mean['quick_cache']:.4f} | {mean['keel Lru']:.4f} | {seeds} of {len(runs)} | {verdict} |")
    if partial:
        print(f"\n{partial} rows left out: not in every run, or without all four policies.")
    print(f"\nRows that miss a goal on the means: {len(failing)}"
          + ''.join(f"\n- {w} at {s}" for w, s in failing))


main()
