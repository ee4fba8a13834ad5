#!/bin/bash
# usage: timeit.sh D ROUNDS DIR1:name DIR2:name ... -- queries (basenames)
# alternates plain and each DIR's version of each query on one connection; prints "label ms"
D=$1; rounds=$2; shift 2
dirs=(); while [ "$1" != "--" ]; do dirs+=("$1"); shift; done; shift
script=$(mktemp /tmp/otfA.XXXX.sql)
echo '\timing on' > $script; echo '\o /dev/null' >> $script
plain=${dirs[0]%%:*}/plain.sql
for q in "$@"; do
  for r in $(seq $rounds); do
    echo "\\echo plain $q" >> $script; cat $plain >> $script
    for d in "${dirs[@]}"; do
      echo "\\echo ${d##*:} $q" >> $script; grep -v '^--' ${d%%:*}/$q.sql >> $script
    done
  done
done
chmod 644 $script
/work/scratch-A/psql.sh $D -f $script 2>&1 | awk '/^(plain|[a-z0-9_]+) [a-z0-9_]+$/{if(k!="")print k, m; k=$1" "$2; m=0; next} /^Time:/{if($2+0>m)m=$2+0} /ERROR/{print} END{if(k!="")print k, m}'
rm -f $script
