import collections,statistics,sys
d=collections.defaultdict(list)
for l in open(sys.argv[1]):
    p=l.split()
    if len(p)==3: d[(p[1],p[0])].append(float(p[2]))
qs=sorted({q for q,_ in d})
for q in qs:
    pl=statistics.median(d[(q,'plain')])
    row=[q, f"plain {pl:.0f}"]
    for v in ['old','new']:
        x=d.get((q,v))
        if x: row.append(f"{v} {statistics.median(x):.0f} ({len(x)}) {statistics.median(x)/pl:.2f}x")
    print(" | ".join(row))
