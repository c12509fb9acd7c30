/* A complete C program around an incc object (see README.md, "C objects").
 *
 *   incc compile architectures/googlenet.incep -o model.o --name model
 *   cc -O2 -I. examples/c/main.c model.o -lm -o demo
 *   ./demo                          # seeded input 0, as `incc run FILE` uses: same top-5
 *   ./demo --input x.f32 --output y.f32 [--params model.params] [--repeat 10]
 *
 * --input: raw little-endian float32, exactly model_INPUT_LEN values (NCHW).
 * --seed N: the input `incc run --seed N` generates (splitmix64, uniform in [-1, 1)).
 * --output: raw float32, model_OUTPUT_LEN values (every output, in model_OUTPUT_NAMES order).
 * --params: weights written by `incc compile ... --weights W.safetensors` (default: the
 *           seeded weights embedded in the object).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

/* incc::weights::random_input. */
static void random_input(float *x, size_t n, uint64_t seed) {
    uint64_t state = seed ^ 0x6a09e667f3bcc908ULL;
    for (size_t i = 0; i < n; i++) {
        uint64_t z;
        state += 0x9e3779b97f4a7c15ULL;
        z = state;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        x[i] = (float)(z >> 40) / 16777216.0f * 2.0f - 1.0f;
    }
}

/* Reads exactly n floats from path; 0 on success. */
static int read_floats(const char *path, float *x, size_t n) {
    FILE *f = fopen(path, "rb");
    char extra;
    int ok;
    if (!f) {
        perror(path);
        return 1;
    }
    ok = fread(x, sizeof(float), n, f) == n && fread(&extra, 1, 1, f) == 0;
    fclose(f);
    if (!ok) fprintf(stderr, "%s: expected exactly %zu float32 values\n", path, n);
    return !ok;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* What `incc run` prints: top-5 of a vector output, else its first values. */
static void print_output(const char *name, const float *y, size_t n, size_t rank) {
    printf("output %s: %zu values\n", name, n);
    if (rank == 2 && n >= 2) {
        int used[5] = {-1, -1, -1, -1, -1};
        for (int r = 0; r < 5 && (size_t)r < n; r++) {
            int best = -1;
            for (size_t i = 0; i < n; i++) {
                int taken = 0;
                for (int k = 0; k < r; k++) taken |= used[k] == (int)i;
                if (!taken && (best < 0 || y[i] > y[best])) best = (int)i;
            }
            used[r] = best;
            printf("  top-%d: index %5d  score %.6f\n", r + 1, best, y[best]);
        }
    } else {
        printf("  first values:");
        for (size_t i = 0; i < n && i < 8; i++) printf(" %.6f", y[i]);
        printf("\n");
    }
}

int main(int argc, char **argv) {
    const char *input = NULL, *output = NULL, *params = NULL;
    unsigned long long seed = 0;
    long repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: %s [--seed N | --input X.f32] [--params P] [--output Y.f32] [--repeat N]\n", argv[0]);
            return 2;
        }
        if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--params")) params = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--repeat")) repeat = strtol(v, NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
        i++;
    }

    float *x = malloc(sizeof(float) * model_INPUT_LEN);
    float *y = malloc(sizeof(float) * model_OUTPUT_LEN);
    if (!x || !y) return 1;
    if (input) {
        if (read_floats(input, x, model_INPUT_LEN)) return 1;
    } else {
        random_input(x, model_INPUT_LEN, seed);
    }

    model_model *m = model_create(params);
    if (!m) {
        fprintf(stderr, "model_create(%s) failed\n", params ? params : "NULL");
        return 1;
    }
    double best = 1e30;
    for (long r = 0; r < (repeat < 1 ? 1 : repeat); r++) {
        double t0 = now_ms();
        int rc = model_run(m, x, model_INPUT_LEN, y, model_OUTPUT_LEN);
        double t = now_ms() - t0;
        if (rc != model_RUN_OK) {
            fprintf(stderr, "model_run returned %d\n", rc);
            return 1;
        }
        if (t < best) best = t;
    }
    model_destroy(m);

    if (output) {
        FILE *f = fopen(output, "wb");
        if (!f || fwrite(y, sizeof(float), model_OUTPUT_LEN, f) != model_OUTPUT_LEN || fclose(f)) {
            perror(output);
            return 1;
        }
    } else {
        static const char *names[] = model_OUTPUT_NAMES;
        static const size_t offsets[] = model_OUTPUT_OFFSETS, lens[] = model_OUTPUT_LENS, ranks[] = model_OUTPUT_RANKS;
        for (size_t i = 0; i < model_OUTPUT_COUNT; i++) print_output(names[i], y + offsets[i], lens[i], ranks[i]);
    }
    printf("ran in %.2f ms (best of %ld, one thread)\n", best, repeat < 1 ? 1 : repeat);
    free(x);
    free(y);
    return 0;
}
