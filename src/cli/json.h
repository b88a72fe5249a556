/* json.h — the one JSON writer of the command line (`trial --json`, `status --json`).
 *
 * Owns: writing one JSON value to a stream with its commas, strings escaped (quote,
 * backslash, control characters as \uXXXX; other bytes pass through, so UTF-8 stays UTF-8)
 * and numbers that JSON cannot hold (NaN, +-Inf) written as null.
 * Never: reads JSON, allocates, or decides what a command prints.
 * Usage: json_writer w; json_begin(&w, stdout, 1); json_open_object(&w, NULL);
 *        json_string(&w, "arch", name); ...; json_close(&w); json_end(&w);
 * A member's key is its first argument inside an object; inside an array (or at the top)
 * the key is NULL. */
#ifndef REPSWEEP_CLI_JSON_H
#define REPSWEEP_CLI_JSON_H

#include <stdio.h>

/* Deeper nesting than this is a programming error: the writer stops counting there. */
#define JSON_MAX_DEPTH 8

typedef struct {
    FILE *f;
    int depth;
    int members[JSON_MAX_DEPTH];   /* values written so far at each open level */
    char closer[JSON_MAX_DEPTH];   /* '}' or ']' for each open level */
    int pretty;                    /* 1: each member of the outermost object on its own line */
} json_writer;

void json_begin(json_writer *w, FILE *f, int pretty);
/* After the outermost value: a newline. */
void json_end(json_writer *w);

void json_open_object(json_writer *w, const char *key);
void json_open_array(json_writer *w, const char *key);
void json_close(json_writer *w);   /* the innermost open object or array */

void json_string(json_writer *w, const char *key, const char *text); /* NULL text: null */
void json_number(json_writer *w, const char *key, double v);          /* %.17g or null */
void json_number_digits(json_writer *w, const char *key, double v, int digits);
void json_int(json_writer *w, const char *key, long long v);
void json_uint(json_writer *w, const char *key, unsigned long long v);
void json_bool(json_writer *w, const char *key, int v);
void json_null(json_writer *w, const char *key);

#endif
