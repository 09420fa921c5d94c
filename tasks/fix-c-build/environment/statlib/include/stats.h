/* Summary statistics over an array of doubles. */

typedef struct {
    int count;
    double mean;
    double stddev;
    double median;
} summary_t;

summary_t summarize(double *values, int n);
