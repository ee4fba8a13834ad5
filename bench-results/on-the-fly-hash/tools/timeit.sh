#!/bin/bash
# usage: timeit.sh ROUNDS q1 q2 ... ; alternates plain, old, new per query on one connection
# SQL from $SQLDIR/{plain.sql,old/,new/} (default: /tmp/otf, plain /tmp/plain.sql)
rounds=$1; shift
dir=${SQLDIR:-/tmp/otf}; plain=${SQLDIR:+$SQLDIR/plain.sql}; plain=${plain:-/tmp/plain.sql}
script=/tmp/otf/run.sql
echo 'set jit = off;' > $script; echo '\timing on' >> $script; echo '\o /dev/null' >> $script
for r in $(seq $rounds); do for q in "$@"; do
  echo "\\echo plain $q" >> $script; cat $plain >> $script
  for v in old new; do echo "\\echo $v $q" >> $script; grep -v '^--' $dir/$v/$q.sql >> $script; done
done; done
tools/psql.sh -f $script 2>&1 | awk '/^(plain|old|new) /{l=$1; q=$2} /^Time:/{print l, q, $2}'
