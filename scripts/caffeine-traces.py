#!/usr/bin/env python3
"""Writes traces from the Caffeine simulator that `shared/traces` does not hold, one key per
line (gzip), for `compare cache --trace`: hit ratios checked on traces the policy was never
tuned on.

usage: scripts/caffeine-traces.py CAFFEINE_CHECKOUT OUT_DIR

CAFFEINE_CHECKOUT is a clone of https://github.com/ben-manes/caffeine (Apache-2.0). Written:
the LIRS traces cpp, multi2, multi3, ps and zigzag (already one key per line); the address
traces gzip, mcf, swim and twolf (a hex address per line, as the simulator's
AddressTraceReader reads them); and cache2k's web07, web12, orm-busy and orm-night (big-endian
32-bit keys, as Cache2kTraceReader reads them). Needs `xz` on the PATH for the cache2k files.
"""
import gzip
import os
import struct
import subprocess
import sys

PARSERS = 'simulator/src/main/resources/com/github/benmanes/caffeine/cache/simulator/parser'


def lirs(path):
    with gzip.open(path, 'rt') as f:
        for line in f:
            line = line.strip()
            if line and line != '*':
                yield int(line)


def address(path):
    with gzip.open(path, 'rt') as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                yield int(fields[1], 16)


def cache2k(path):
    data = subprocess.run(['xz', '-dc', path], check=True, capture_output=True).stdout
    whole = len(data) // 4 * 4
    for (key,) in struct.iter_unpack('>I', data[:whole]):
        yield key


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root = os.path.join(sys.argv[1], PARSERS)
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    sources = [(f'lirs-{n}', lirs, f'lirs/{n}.trace.gz') for n in
               ('cpp', 'multi2', 'multi3', 'ps', 'zigzag')]
    sources += [(f'address-{n}', address, f'address/{n}.trace.gz') for n in
                ('gzip', 'mcf', 'swim', 'twolf')]
    sources += [(f'cache2k-{n}', cache2k, f'cache2k/{n}.trace.xz') for n in
                ('web07', 'web12', 'orm-busy', 'orm-night')]
    for name, read, source in sources:
        target = os.path.join(out, f'{name}.trace.gz')
        keys = 0
        with gzip.open(target, 'wt') as f:
            for key in read(os.path.join(root, source)):
                f.write(f'{key}\n')
                keys += 1
        print(f'{target}: {keys} requests')


main()
