#!/bin/sh
# test/mutate.sh - a small mutation check: does the suite catch these bugs?
#
#   sh test/mutate.sh [LIST]          LIST defaults to test/mutations.txt; `make mutate` runs it
#
# Each line of LIST is one bug put into hupwatch.c, as four TAB-separated fields:
#
#   NAME <TAB> FIND <TAB> REPLACE <TAB> TESTS
#
# FIND is a fixed string (not a pattern) that must occur exactly once in hupwatch.c, REPLACE what
# it becomes; in both, \t \n and \\ stand for a tab, a newline and a backslash. TESTS are the
# tests that must catch it, separated by spaces: `unit` runs test/unit, anything else is given to
# test/run_integration.py (a file, a module or a dotted name such as test_core.CoreTest.test_x).
# Lines starting with '#' and blank lines are ignored.
#
# Everything happens in a temporary copy of the tree (the tree itself is never touched): the
# unmutated copy is built and the union of all TESTS runs on it first (a test that fails there
# can catch nothing: the check stops); then, for each mutation, hupwatch.c is mutated, rebuilt,
# and its TESTS run. A mutation whose TESTS all pass SURVIVED.
#
# Exit: 0 every mutation was caught; 1 at least one survived; 2 the list or the tree is broken
# (a FIND missing or not unique, a mutant that does not build, a test failing unmutated).
# Knobs: MUTATE_ONLY="NAME ..." (only these mutations), MUTATE_TIMEOUT (seconds per test,
# default 60), KEEP=1 (keep the temporary copy and its logs), PYTHON (default python3).

set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
LIST=${1:-test/mutations.txt}
PYTHON=${PYTHON:-python3}
TIMEOUT=${MUTATE_TIMEOUT:-60}
case $LIST in /*) ;; *) LIST=$ROOT/$LIST ;; esac
[ -f "$LIST" ] || { echo "mutate: no list '$LIST'" >&2; exit 2; }

TMP=$(mktemp -d /tmp/hupwatch-mutate.XXXXXX) || exit 2
if [ "${KEEP:-0}" = 1 ]; then
	trap 'echo "mutate: kept $TMP" >&2' EXIT
else
	trap 'rm -rf "$TMP"' EXIT
fi
trap 'exit 2' HUP INT TERM
TREE=$TMP/tree
LOGS=$TMP/logs
mkdir -p "$TREE" "$LOGS" "$TMP/mutants"

# The copy: every file of the working tree (uncommitted changes included), no .git, no binaries.
tar -C "$ROOT" -cf - --exclude=./.git --exclude=./hupwatch --exclude=./test/child \
	--exclude=./test/unit --exclude='*.o' --exclude=__pycache__ . | tar -C "$TREE" -xf - || exit 2

# Parse the list: one mutant source per mutation, and a plan line "NAME<TAB>TESTS" for each.
"$PYTHON" - "$LIST" "$TREE/hupwatch.c" "$TMP/mutants" "${MUTATE_ONLY:-}" >"$TMP/plan" <<'EOF' || exit 2
import os, re, sys
listfile, source, outdir, only = sys.argv[1:5]
only = set(only.split())
text = open(source).read()
def unescape(s):
    return re.sub(r"\\([tn\\])", lambda m: {"t": "\t", "n": "\n", "\\": "\\"}[m.group(1)], s)
bad, names = 0, set()
for no, line in enumerate(open(listfile).read().splitlines(), 1):
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    fields = line.split("\t")
    where = "%s:%d" % (os.path.basename(listfile), no)
    if len(fields) != 4 or not all(f.strip() for f in (fields[0], fields[1], fields[3])):
        print("mutate: %s: want NAME<TAB>FIND<TAB>REPLACE<TAB>TESTS, got %d fields"
              % (where, len(fields)), file=sys.stderr)
        bad += 1
        continue
    name, find, replace, tests = fields[0].strip(), unescape(fields[1]), unescape(fields[2]), fields[3]
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in names:
        print("mutate: %s: bad or repeated name %r" % (where, name), file=sys.stderr)
        bad += 1
        continue
    names.add(name)
    n = text.count(find)
    if n != 1:
        print("mutate: %s: %s: FIND occurs %d times in hupwatch.c (want once): %r"
              % (where, name, n, find), file=sys.stderr)
        bad += 1
        continue
    if only and name not in only:
        continue
    with open(os.path.join(outdir, name + ".c"), "w") as f:
        f.write(text.replace(find, replace))
    print("%s\t%s" % (name, " ".join(tests.split())))
missing = only - names
for name in sorted(missing):
    print("mutate: MUTATE_ONLY names an unknown mutation %r" % name, file=sys.stderr)
sys.exit(2 if bad or missing else 0)
EOF
[ -s "$TMP/plan" ] || { echo "mutate: no mutation to run" >&2; exit 2; }

# Run TESTS (a space-separated list) in the copy; 0 if every one passed. Output to $2.
run_tests() {
	tests=$1 log=$2 integration='' rc=0
	for t in $tests; do
		case $t in
		unit) (cd "$TREE" && ./test/unit) >>"$log" 2>&1 || rc=1 ;;
		*) integration="$integration $t" ;;
		esac
	done
	if [ -n "$integration" ]; then
		# shellcheck disable=SC2086 # the names are words
		(cd "$TREE" && env -u HUPWATCH -u CHILD "$PYTHON" test/run_integration.py --no-build \
			--timeout "$TIMEOUT" $integration) >>"$log" 2>&1 || rc=1
	fi
	return $rc
}

build() {
	targets=hupwatch
	case " $1 " in *" unit "*) targets="$targets test/unit" ;; esac
	# shellcheck disable=SC2086 # two words at most, no glob
	(cd "$TREE" && rm -f $targets && make -s $targets) >>"$2" 2>&1 # rebuilt, whatever the mtimes
}

# Baseline: the unmutated copy must pass every test the list relies on.
all_tests=$(cut -f2 "$TMP/plan" | tr ' ' '\n' | sort -u | tr '\n' ' ')
start=$(date +%s)
echo "mutate: baseline: building and running $(echo "$all_tests" | wc -w) tests unmutated"
if ! make -s -C "$TREE" hupwatch test/child test/unit >"$LOGS/baseline.log" 2>&1; then
	echo "mutate: the unmutated tree does not build:" >&2
	tail -20 "$LOGS/baseline.log" >&2
	exit 2
fi
cp "$TREE/hupwatch.c" "$TMP/hupwatch.c.orig"
if ! run_tests "$all_tests" "$LOGS/baseline.log"; then
	echo "mutate: tests fail on the unmutated tree; they cannot catch anything:" >&2
	grep -E '^(FAIL|ERROR):|FAILED|integration:' "$LOGS/baseline.log" >&2
	exit 2
fi

total=0 caught=0 survived='' broken=''
tab=$(printf '\t')
while IFS=$tab read -r name tests; do
	total=$((total + 1))
	log=$LOGS/$name.log
	t0=$(date +%s)
	cp "$TMP/mutants/$name.c" "$TREE/hupwatch.c"
	if ! build "$tests" "$log"; then
		echo "mutate: $name: BROKEN: the mutant does not build (see below)" >&2
		tail -5 "$log" >&2
		broken="$broken $name"
	elif run_tests "$tests" "$log"; then
		echo "mutate: $name: SURVIVED: $tests passed with it ($(($(date +%s) - t0))s)"
		survived="$survived $name"
	else
		caught=$((caught + 1))
		echo "mutate: $name: caught ($(($(date +%s) - t0))s)"
	fi
	cp "$TMP/hupwatch.c.orig" "$TREE/hupwatch.c"
done <"$TMP/plan"

count() { echo "$#"; }
# shellcheck disable=SC2086 # counting the words
echo "mutate: $total mutations: $caught caught, $(count $survived) survived," \
	"$(count $broken) broken ($(($(date +%s) - start))s)"
[ -n "$broken" ] && exit 2
[ -n "$survived" ] && { echo "mutate: survived:$survived" >&2; exit 1; }
exit 0
