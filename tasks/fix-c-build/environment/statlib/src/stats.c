#include <math.h>
#include <stdlib.h>

#include "stats.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

summary_t summarize(double *values, int n) {
    summary_t s = {0, 0.0, 0.0, 0.0};
    s.count = n;
    if (n == 0) return s;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += values[i];
    s.mean = sum / n;
    double sq = 0.0;
    for (int i = 0; i < n; i++) sq += (values[i] - s.mean) * (values[i] - s.mean);
    s.stddev = n > 1 ? sqrt(sq / (n - 1)) : 0.0;
    qsort(values, n, sizeof(double), cmp_double);
    if (n % 2) s.median = values[n / 2];
    else s.median = (values[n / 2 - 1] + values[n / 2]) / 2;
    return s;
}
