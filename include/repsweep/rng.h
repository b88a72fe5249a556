/* rng.h — reproducible random numbers keyed by a trial's coordinates.
 *
 * Owns: a 64-bit key derived from (architecture name, gain, input_gap, target_gap, seed,
 * purpose), and a GSL generator type ("splitmix64") seeded with the full 64-bit key, so that
 * GSL's distributions (gsl_ran_gaussian_ziggurat, gsl_rng_uniform) can be used on it.
 * Why not mt19937: GSL seeds it with 32 bits only, and 10^6 trials would then share weights
 * by the birthday bound. A trial's random numbers depend only on its key, never on rank,
 * order or resumption.
 * Never: global state; every generator is created and freed by its owner. */
#ifndef REPSWEEP_RNG_H
#define REPSWEEP_RNG_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

/* The GSL generator type: SplitMix64 (a Weyl sequence through a 64-bit finaliser), 32-bit
 * outputs; gsl_rng_set(r, key) takes the whole 64-bit key on LP64 platforms. */
extern const gsl_rng_type *rs_rng_splitmix64;

/* What a stream is for: separate streams for weights and dropout masks of one trial. */
typedef enum { RS_STREAM_WEIGHTS = 1, RS_STREAM_DROPOUT = 2 } rs_stream;

/* The key of a trial: hashes the architecture's name, the exact bit patterns of gain,
 * input_gap and target_gap, the seed and the stream. */
uint64_t rs_rng_trial_key(const char *arch_name, double gain, double input_gap,
                          double target_gap, long seed, rs_stream stream);

/* A generator for a key; NULL on allocation failure. Free with gsl_rng_free. */
gsl_rng *rs_rng_alloc_keyed(uint64_t key);

#endif
