#include <stdio.h>
#include <stdlib.h>

#include "util.h"

int parse_values(int argc, char **argv, double *out) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        double v = strtod(argv[i], &end);
        if (end == argv[i] || *end != '\0') {
            fprintf(stderr, "not a number: %s\n", argv[i]);
            return -1;
        }
        out[n++] = v;
    }
    return n;
}

void print_summary(const summary_t *s) {
    printf("count=%d mean=%.3f stddev=%.3f median=%.3f\n", s->count, s->mean, s->stddev, s->median);
}
