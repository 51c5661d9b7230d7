# Sourced by the .ci scripts: the majors of .ci/majors (a data file, which the e2e harness reads
# too) as DEBIAN_MAJOR, TESTED_MAJORS and PG_PREFIX_BASE, and pg_config_of.
majors_file="$(dirname "${BASH_SOURCE[0]}")/majors"
while read -r name value; do
  case $name in
    debian) DEBIAN_MAJOR=$value ;;
    tested) TESTED_MAJORS=$value ;;
    prefix) PG_PREFIX_BASE=${PG_PREFIX_BASE:-$value} ;;
    ''|'#'*) ;;
    *) echo "$majors_file: unknown name \"$name\"" >&2; exit 1 ;;
  esac
done < "$majors_file"
for name in DEBIAN_MAJOR TESTED_MAJORS PG_PREFIX_BASE; do
  [ -n "${!name:-}" ] || { echo "$majors_file does not give $name" >&2; exit 1; }
done
unset majors_file name value

pg_config_of() { # MAJOR -> path of its pg_config
  if [ "$1" = "$DEBIAN_MAJOR" ]; then echo "/usr/lib/postgresql/$1/bin/pg_config"; else echo "$PG_PREFIX_BASE/$1/bin/pg_config"; fi
}

# PG_MAJOR (default DEBIAN_MAJOR) chooses the major of the demo, the benchmark and, when neither
# PG_CONFIG nor PG_MAJORS says otherwise, the tests.
PG_MAJOR=${PG_MAJOR:-$DEBIAN_MAJOR}
case " $TESTED_MAJORS " in *" $PG_MAJOR "*) ;; *) echo "PG_MAJOR=$PG_MAJOR is not a tested major ($TESTED_MAJORS)" >&2; exit 1 ;; esac
