#!/usr/bin/env python3
"""Scores keel `Cache` replays against the README's hit-ratio goals, on the hold-out halves.

usage: scripts/cache-score.py TRACES_README REFERENCE.md CANDIDATE.md...

REFERENCE.md is `compare cache` output with the policies "keel Cache", "moka, at capacity",
quick_cache and "keel Lru"; each CANDIDATE.md is `compare cache --policy "keel Cache"` output
of the same workloads. A row's score is the points by which keel misses each goal (1 point
over the best libCacheSim reference, 0.5 over quick_cache, 0.5 over moka held to capacity, and
on synthetic rows where LRU is the best of those three, 1 over LRU); scores are summed over
half A and half B. With one candidate, also lists the rows that moved by 0.1 point or more.
"""
import os,sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_tables import best_references, goal_misses, parse
best=best_references(sys.argv[1])
ref=parse(sys.argv[2])
A={'lirs-loop','lirs-multi1','lirs-2_pools','lirs-cs','arc-oltp','lirs-scan','arc-p12-2m','zipf 0.8','zipf 1.2','loop 10k','recency probe','loop 1.1x cache','shifting working set (1,000 keys, +100 every 5k)','hot set 500 + scans'}
traces={w for (w,s) in best}
def score(path, verbose=False):
    cand=parse(path); tot={'A':0,'B':0}
    for key,r in ref.items():
        if key not in cand: continue
        k=cand[key]['keel Cache']; w=key[0]
        s=sum(goal_misses(k, r, best.get(key), w not in traces).values())
        half='A' if w in A else 'B'
        tot[half]+=s*100
        k0=r['keel Cache']
        if verbose and abs(k-k0)>=0.001: print(f"{half} {w[:30]:30} {key[1]:6} {k0:.4f} -> {k:.4f} ({(k-k0)*100:+.2f}) score {s*100:.2f}")
    return tot
for p in sys.argv[3:]:
    t=score(p, verbose=len(sys.argv)==4)
    print(p, f"A {t['A']:.2f}  B {t['B']:.2f}")
