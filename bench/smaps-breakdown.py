#!/usr/bin/env python3
"""Split a .NET process's resident memory by owner, from /proc/PID/smaps copies (issue 16 point 3).

    bench/smaps-breakdown.py EMPTY.smaps HELD.smaps [CONNECTIONS]

Owners, told apart by where their mappings lie (no symbols needed):
  gc heap      the contiguous run of anonymous mappings around the GC's reserved range (the largest anonymous
               mapping of the process, tens of GB of PROT_NONE with the committed regions inside it)
  malloc       glibc's main arena ([heap]) and its other arenas (anonymous mappings that start on a 64 MiB
               boundary, HEAP_MAX_SIZE on 64-bit, with their PROT_NONE tail): OpenSSL, the runtime's native parts
  stacks       [stack] and the 8 MiB / 1.5 MiB thread stacks (anonymous rw-p mappings of those sizes)
  other anon   the rest without a file: JIT code, the runtime's loader heaps, guard pages
  files        file-backed mappings (the runtime, assemblies, libraries)
With two copies it prints the difference, and per connection when CONNECTIONS is given (bench/IdleFootprint --smaps
writes the copies).
"""
import re
import sys

ARENA = 64 << 20
LINE = re.compile(r'^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$')


def read(path):
    maps, cur = [], None
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                cur = {'start': int(m.group(1), 16), 'end': int(m.group(2), 16), 'perm': m.group(3),
                       'name': m.group(4).strip(), 'rss': 0}
                maps.append(cur)
            elif line.startswith('Rss:') and cur is not None:
                cur['rss'] = int(line.split()[1])
    return maps


def classify(maps):
    anon = [m for m in maps if not m['name'].startswith('/')]
    owner = {}
    # The GC's range: the run of touching anonymous mappings around the largest anonymous mapping.
    if anon:
        biggest = max(range(len(maps)), key=lambda i: -1 if maps[i]['name'].startswith('/') else maps[i]['end'] - maps[i]['start'])
        lo = hi = biggest
        while lo > 0 and not maps[lo - 1]['name'] and maps[lo - 1]['end'] == maps[lo]['start']:
            lo -= 1
        while hi + 1 < len(maps) and not maps[hi + 1]['name'] and maps[hi + 1]['start'] == maps[hi]['end']:
            hi += 1
        for i in range(lo, hi + 1):
            owner[i] = 'gc heap'
    arena_end = -1
    for i, m in enumerate(maps):
        if i in owner:
            continue
        size = m['end'] - m['start']
        if m['name'].startswith('/'):
            owner[i] = 'files'
        elif m['name'] == '[heap]':
            owner[i] = 'malloc'
        elif m['name'] == '[stack]':
            owner[i] = 'stacks'
        elif m['name'] == '' and m['start'] % ARENA == 0:
            owner[i] = 'malloc'
            arena_end = m['start'] + ARENA
        elif m['name'] == '' and m['end'] <= arena_end:
            owner[i] = 'malloc'
        elif m['name'] == '' and m['perm'].startswith('rw') and size in (8 << 20, 1536 << 10):
            owner[i] = 'stacks'
        else:
            owner[i] = 'other anon'
    totals = {}
    for i, m in enumerate(maps):
        totals[owner[i]] = totals.get(owner[i], 0) + m['rss']
    totals['total'] = sum(m['rss'] for m in maps)
    return totals


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    first = classify(read(sys.argv[1]))
    second = classify(read(sys.argv[2])) if len(sys.argv) > 2 else None
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    keys = ['gc heap', 'malloc', 'stacks', 'other anon', 'files', 'total']
    print(f"{'owner':<12}{'first KiB':>12}" + (f"{'second KiB':>12}{'diff KiB':>10}" if second else '') + (f"{'B per conn':>12}" if n else ''))
    for k in keys:
        a = first.get(k, 0)
        row = f"{k:<12}{a:>12,}"
        if second:
            b = second.get(k, 0)
            row += f"{b:>12,}{b - a:>10,}"
            if n:
                row += f"{(b - a) * 1024 / n:>12,.0f}"
        print(row)
    return 0


if __name__ == '__main__':
    sys.exit(main())
