/* Minimal test helpers: a failing check prints file:line and the values,
 * and the test exits non-zero at the end. */
#ifndef FTUNE_TESTUTIL_H
#define FTUNE_TESTUTIL_H

#include <stddef.h>

extern int tu_failures;
extern int tu_checks;

#define CHECK(cond) tu_check((cond), __FILE__, __LINE__, #cond)
#define CHECK_NEAR(a, b, tol)                                                                      \
    tu_check_near((double)(a), (double)(b), (double)(tol), __FILE__, __LINE__, #a, #b)
#define CHECK_STR_CONTAINS(hay, needle) tu_check_contains((hay), (needle), __FILE__, __LINE__)

int tu_check(int ok, const char *file, int line, const char *expr);
int tu_check_near(double a, double b, double tol, const char *file, int line, const char *ea,
                  const char *eb);
int tu_check_contains(const char *hay, const char *needle, const char *file, int line);
/* Prints a summary line and returns the process exit status. */
int tu_done(const char *name);
/* A fresh temporary directory for the test (removed by the OS's tmp policy). */
const char *tu_tmpdir(void);

#endif
