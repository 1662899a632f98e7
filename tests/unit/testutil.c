#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tu_failures = 0;
int tu_checks = 0;

int tu_check(int ok, const char *file, int line, const char *expr)
{
    tu_checks++;
    if (!ok) {
        tu_failures++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    }
    return ok;
}

int tu_check_near(double a, double b, double tol, const char *file, int line, const char *ea,
                  const char *eb)
{
    int ok = isfinite(a) && isfinite(b) && fabs(a - b) <= tol;
    tu_checks++;
    if (!ok) {
        tu_failures++;
        fprintf(stderr, "%s:%d: %s = %.9g, %s = %.9g, |diff| = %.3g > %.3g\n", file, line, ea, a,
                eb, b, fabs(a - b), tol);
    }
    return ok;
}

int tu_check_contains(const char *hay, const char *needle, const char *file, int line)
{
    int ok = hay && needle && strstr(hay, needle) != NULL;
    tu_checks++;
    if (!ok) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected \"%s\" in \"%s\"\n", file, line, needle,
                hay ? hay : "(null)");
    }
    return ok;
}

int tu_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

const char *tu_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ftune-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}
