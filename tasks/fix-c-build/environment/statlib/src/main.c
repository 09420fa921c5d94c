#include <stdio.h>
#include <stdlib.h>

#include "stats.h"
#include "util.h"

int main(int argc, char **argv) {
    double *values = malloc(sizeof(double) * (argc > 1 ? argc : 1));
    int n = parse_values(argc, argv, values);
    if (n < 0) return 2;
    summary_t s = summarize(values, n);
    print_summary(&s);
    free(values);
    return 0;
}
