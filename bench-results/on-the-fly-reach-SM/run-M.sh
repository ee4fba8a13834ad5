#!/bin/bash
# Times each on-the-fly query (reach shape) beside the plain aggregation, alternating,
# on one connection; the bulk shape once (last) for comparison. Usage: run.sh rounds
cd /var/tmp/w3/sqlm
rounds=${1:-3}
script=$(mktemp /tmp/w3run.XXXX.sql)
echo '\timing on' > $script
echo '\o /dev/null' >> $script
for q in root_service service duration_sort errors stats_by attr_401 attr_200 span_name span_svc_slow; do
  for r in $(seq $rounds); do
    echo "\\echo plain $q" >> $script; cat plain.sql >> $script
    echo "\\echo reach $q" >> $script; grep -v '^--' $q.reach.sql >> $script
  done
  echo "\\echo bulk $q" >> $script; grep -v '^--' $q.bulk.sql >> $script
done
chmod 644 $script
/var/tmp/w3/psql.sh $script 2>&1 | awk '/^(plain|reach|bulk) /{k=$1" "$2; next} /^Time:/{print k, $2}'
rm -f $script
