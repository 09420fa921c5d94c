#ifndef UTIL_H
#define UTIL_H

#include "stats.h"

int parse_values(int argc, char **argv, double *out);
void print_summary(const summary_t *s);

#endif
