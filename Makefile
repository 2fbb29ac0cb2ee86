# hupwatch - GNU make.
#
# Our flags are added in front of the user's CPPFLAGS/CFLAGS/LDFLAGS, never
# instead of them, so `make CFLAGS=-O0` still gets warnings and hardening and
# the user's flags win where they conflict.
#
#   make                 build ./hupwatch
#   make check           install test deps if missing, unit + integration tests
#   make golden          rewrite test/golden/ from the current binary (review the diff)
#   make coverage        line coverage of hupwatch.c over the unit + integration tests
#   make demo            reload a demo server under load, count failed requests
#   make mutate          does the suite catch the bugs of test/mutations.txt?
#   make install         PREFIX=/usr/local DESTDIR= BINDIR= MANDIR=
#   make deb             build/hupwatch_VERSION-1_ARCH.deb (pkg/deb.sh: dpkg-deb, lintian-clean)
#
# Knobs: WERROR=1 (warnings are errors; CI sets it), HARDEN=0 (drop the
# hardening flags, e.g. for sanitizer or fuzzer builds), SKIP_DEPS=1 (check
# does not run test/deps.sh), TESTS="test_x ..." (integration tests to run).

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
MAN1DIR ?= $(MANDIR)/man1
DESTDIR ?=

PYTHON  ?= python3
INSTALL ?= install
PKG_CONFIG ?= pkg-config

WERROR  ?= 0
HARDEN  ?= 1

HW_CPPFLAGS = -D_GNU_SOURCE
HW_CFLAGS   = -std=c11 -Wall -Wextra -O2 -g
HW_LDFLAGS  =

ifeq ($(WERROR),1)
HW_CFLAGS  += -Werror
endif

ifeq ($(HARDEN),1)
# Leave _FORTIFY_SOURCE alone when the user chose a level: defining it twice
# is a warning, an error under WERROR=1.
ifeq ($(findstring _FORTIFY_SOURCE,$(CPPFLAGS) $(CFLAGS)),)
HW_CPPFLAGS += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
endif
HW_CFLAGS  += -fstack-protector-strong -fPIE
HW_LDFLAGS += -pie -Wl,-z,relro,-z,now
# Stack-clash and CET (x86) protection where this compiler and target take
# them; asked of the compiler once per make run.
HW_PROBED  := $(strip $(foreach f,-fstack-clash-protection -fcf-protection,\
	$(shell $(CC) -Werror $(f) -x c -c -o /dev/null /dev/null 2>/dev/null && echo $(f))))
HW_CFLAGS  += $(HW_PROBED)
endif

ALL_CPPFLAGS = $(HW_CPPFLAGS) $(CPPFLAGS)
ALL_CFLAGS   = $(HW_CFLAGS) $(CFLAGS)
ALL_LDFLAGS  = $(HW_LDFLAGS) $(LDFLAGS)

# cmocka, for test/unit only; looked up when test/unit is built, so a machine
# without pkg-config can still build hupwatch.
CMOCKA_CFLAGS = $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)
# The unit test includes hupwatch.c whole; it silences -Wunused-function for
# that file only (a pragma around the #include), so that a test function
# missing from its tests[] still warns. It also hands functions deliberately
# small buffers to test truncation, which gcc's -Wformat-truncation flags once
# inlined; the real build keeps that warning. Extra link flags (e.g.
# -Wl,--wrap=SYMBOL) go in UNIT_LDFLAGS.
UNIT_CFLAGS   = -DUNIT_TEST \
	$(shell $(CC) -Werror -Wno-format-truncation -x c -c -o /dev/null /dev/null 2>/dev/null \
		&& echo -Wno-format-truncation)
UNIT_LDFLAGS ?=

.DELETE_ON_ERROR:
.PHONY: all check check-sanitize coverage golden fuzz lint mutate bench demo deb install uninstall clean

all: hupwatch

hupwatch: hupwatch.c
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ hupwatch.c $(LDLIBS)

test/child: test/child.c
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ test/child.c $(LDLIBS)

test/unit: test/unit.c hupwatch.c
	$(CC) $(ALL_CPPFLAGS) $(UNIT_CFLAGS) $(CMOCKA_CFLAGS) $(ALL_CFLAGS) \
		$(ALL_LDFLAGS) $(UNIT_LDFLAGS) -o $@ test/unit.c $(CMOCKA_LIBS) $(LDLIBS)

# deps.sh runs before anything is compiled (it may install the compiler's
# friends), hence the recursive make for the builds.
check:
ifneq ($(SKIP_DEPS),1)
	sh test/deps.sh
endif
	$(MAKE) hupwatch test/child test/unit
	./test/unit
	$(PYTHON) test/run_integration.py $(TESTS)

check-sanitize:
	sh test/sanitize.sh

# gcc --coverage build in build/coverage; unit + integration runs; gcov.
coverage:
	sh test/coverage.sh

# The golden files are compared by test/test_golden.py; this rewrites them.
golden: hupwatch test/child
	UPDATE_GOLDEN=1 $(PYTHON) test/run_integration.py --no-build test/test_golden.py

# Variables given on the command line (FUZZ_SECONDS=10, TESTS=..., CC=...)
# reach these scripts through the environment.
fuzz:
	sh test/fuzz/run.sh

lint:
	sh test/lint.sh

# The one-line bugs of test/mutations.txt, each in a copy of the tree: exit 1 if one survives.
mutate:
	sh test/mutate.sh test/mutations.txt

bench: hupwatch
	sh bench/run.sh

demo: hupwatch
	sh examples/demo.sh

# DEB_REVISION, DEB_MAINTAINER, DEB_OUT, SOURCE_DATE_EPOCH: see pkg/deb.sh.
deb: hupwatch hupwatch.1
	sh pkg/deb.sh

install: hupwatch hupwatch.1
	$(INSTALL) -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MAN1DIR)'
	$(INSTALL) -m 0755 hupwatch '$(DESTDIR)$(BINDIR)/hupwatch'
	$(INSTALL) -m 0644 hupwatch.1 '$(DESTDIR)$(MAN1DIR)/hupwatch.1'

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/hupwatch' '$(DESTDIR)$(MAN1DIR)/hupwatch.1'

clean:
	rm -f hupwatch test/child test/unit test/unit-* *.o build/hupwatch_*.deb
