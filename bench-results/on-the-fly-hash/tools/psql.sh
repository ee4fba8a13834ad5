#!/bin/bash
D=${D:-/tmp/Ldata}
PGPASSWORD=$(grep '^postgres ' $D/srql-credentials | awk '{print $2}') exec psql -h $D -p 5432 -U postgres -d srql "$@"
