import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 3: d[(p[1], p[0])].append(float(p[2]))
qs = sorted({q for q, _ in d})
labels = sorted({l for _, l in d}, key=lambda l: (l != 'plain', l))
print("query", *labels, sep=" | ")
for q in qs:
    plain = statistics.median(d[(q, 'plain')]) if (q, 'plain') in d else None
    row = [q]
    for l in labels:
        v = d.get((q, l))
        if not v: row.append("-"); continue
        m = statistics.median(v)
        row.append(f"{m:.0f} ({len(v)})" + ("" if l == 'plain' or not plain else f" {m/plain:.2f}x"))
    print(*row, sep=" | ")
