/*
 * test/coverage_hooks.c - linked into the `make coverage` build only (test/coverage.sh),
 * with -Wl,--wrap=execvp,--wrap=execl,--wrap=_exit.
 *
 * gcov writes a process's counts when it calls exit(). hupwatch's forked children never do:
 * they exec the command or the ready probe, or _exit when that fails, so the child side of a
 * spawn (exec_generation, reset_signals, ...) would count as never run. These wrappers write
 * the counts first (__gcov_dump, from libgcov), then do what was asked. Not instrumented
 * itself; nothing here is in the program as shipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

void __gcov_dump(void);
int __real_execvp(const char *file, char *const argv[]);
void __real__exit(int status) __attribute__((noreturn));

int __wrap_execvp(const char *file, char *const argv[]);
int __wrap_execl(const char *path, const char *arg, ...);
void __wrap__exit(int status) __attribute__((noreturn));

int __wrap_execvp(const char *file, char *const argv[])
{
	__gcov_dump();
	return __real_execvp(file, argv);
}

/* execl(path, arg0, ..., NULL) is execv(path, {arg0, ..., NULL}). */
int __wrap_execl(const char *path, const char *arg, ...)
{
	char *argv[64];
	size_t n = 0;
	va_list ap;

	argv[n++] = (char *)arg;
	va_start(ap, arg);
	while (arg != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1 &&
	       (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	__gcov_dump();
	return execv(path, argv);
}

void __wrap__exit(int status)
{
	__gcov_dump();
	__real__exit(status);
}
