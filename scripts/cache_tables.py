"""Reads `compare cache` output and the best libCacheSim references of shared/traces/README.md,
for `cache-score.py` and `cache-seeds.py`."""
import re


def parse(path):
    """The tables of a `compare cache` run: {(workload, size): {policy: miss ratio}}."""
    rows, cols = {}, None
    for line in open(path):
        if line.startswith('| workload'):
            cols = [c.strip() for c in line.strip().strip('|').split('|')]
        elif line.startswith('| ') and cols and not line.startswith('|---'):
            c = [x.strip().replace('*', '') for x in line.strip().strip('|').split('|')]
            name = c[0].replace('.trace.gz', '').replace('.txt.gz', '')
            rows[(name, int(c[1].split()[0]))] = {cols[i]: float(c[i]) for i in range(2, len(c))}
    return rows


def best_references(traces_readme):
    """The best reference miss ratio of each trace row: {(trace, size): miss ratio}."""
    best = {}
    for line in open(traces_readme):
        m = re.match(r'\| (\S+) \| (\d+) \|.*\*\*([\d.]+)\*\* \|', line)
        if m:
            best[(m.group(1), int(m.group(2)))] = float(m.group(3))
    return best


# The goals: how far keel's miss ratio may be above each peer's.
GOALS = {'best reference': 0.01, 'quick_cache': 0.005, 'moka': 0.005, 'LRU': 0.01}


def goal_misses(k, peers, best, synthetic):
    """The goals keel's miss ratio k misses, each with the miss ratio beyond it. `peers` is a
    row of a `compare cache` run, `best` the row's best reference (None if it has none); LRU's
    goal holds on synthetic rows where LRU beats quick_cache and moka held to capacity."""
    gaps = {'quick_cache': k - peers['quick_cache'], 'moka': k - peers['moka, at capacity']}
    if best is not None:
        gaps['best reference'] = k - best
    lru = peers['keel Lru']
    if synthetic and lru <= min(peers['quick_cache'], peers['moka, at capacity']):
        gaps['LRU'] = k - lru
    return {goal: gap - GOALS[goal] for goal, gap in gaps.items() if gap > GOALS[goal]}
