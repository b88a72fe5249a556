/* rng.c — SplitMix64 as a GSL generator type and the trial key (see rng.h). */
#include "repsweep/rng.h"

#include <string.h>

/* SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mix. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

#define GOLDEN_GAMMA UINT64_C(0x9e3779b97f4a7c15)

typedef struct {
    uint64_t state;
} splitmix64_state;

static void splitmix64_set(void *vstate, unsigned long seed)
{
    splitmix64_state *s = vstate;
    s->state = (uint64_t)seed;
}

static unsigned long splitmix64_get(void *vstate)
{
    splitmix64_state *s = vstate;
    s->state += GOLDEN_GAMMA;
    return (unsigned long)(mix64(s->state) >> 32);
}

static double splitmix64_get_double(void *vstate)
{
    /* 32 random bits in (0,1): GSL's convention for uniform doubles from 32-bit generators */
    return (double)splitmix64_get(vstate) / 4294967296.0;
}

static const gsl_rng_type splitmix64_type = {
    "splitmix64", 0xffffffffUL, 0, sizeof(splitmix64_state),
    splitmix64_set, splitmix64_get, splitmix64_get_double};

const gsl_rng_type *rs_rng_splitmix64 = &splitmix64_type;

static uint64_t absorb(uint64_t h, uint64_t v)
{
    return mix64(h ^ mix64(v + GOLDEN_GAMMA));
}

static uint64_t double_bits(double x)
{
    uint64_t u;
    if (x == 0.0)
        x = 0.0; /* -0.0 and 0.0 are the same coordinate */
    memcpy(&u, &x, sizeof u);
    return u;
}

uint64_t rs_rng_trial_key(const char *arch_name, double gain, double input_gap,
                          double target_gap, long seed, rs_stream stream)
{
    uint64_t h = UINT64_C(0x7265707377656570); /* "repsweep" */
    for (const unsigned char *c = (const unsigned char *)arch_name; *c; c++)
        h = absorb(h, *c);
    h = absorb(h, double_bits(gain));
    h = absorb(h, double_bits(input_gap));
    h = absorb(h, double_bits(target_gap));
    h = absorb(h, (uint64_t)seed);
    h = absorb(h, (uint64_t)stream);
    return h;
}

gsl_rng *rs_rng_alloc_keyed(uint64_t key)
{
    gsl_rng *r = gsl_rng_alloc(rs_rng_splitmix64);
    if (r)
        gsl_rng_set(r, (unsigned long)key);
    return r;
}
