/* json.c — the command line's JSON writer (see json.h). */
#include "json.h"

#include <math.h>

void json_begin(json_writer *w, FILE *f, int pretty)
{
    w->f = f;
    w->depth = 0;
    w->pretty = pretty;
}

void json_end(json_writer *w) { fputc('\n', w->f); }

static void put_escaped(FILE *f, const char *text)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The separator before a value at the current level, then its key (inside objects). */
static void member(json_writer *w, const char *key)
{
    const int own_line = w->pretty && w->depth == 1;
    if (w->depth > 0 && w->depth <= JSON_MAX_DEPTH && w->members[w->depth - 1]++ > 0)
        fputs(own_line ? ",\n  " : ", ", w->f);
    else if (own_line)
        fputs("\n  ", w->f);
    if (key) {
        put_escaped(w->f, key);
        fputs(": ", w->f);
    }
}

static void open_level(json_writer *w, const char *key, char open, char close)
{
    member(w, key);
    fputc(open, w->f);
    if (w->depth < JSON_MAX_DEPTH) {
        w->members[w->depth] = 0;
        w->closer[w->depth] = close;
    }
    w->depth++;
}

void json_open_object(json_writer *w, const char *key) { open_level(w, key, '{', '}'); }
void json_open_array(json_writer *w, const char *key) { open_level(w, key, '[', ']'); }

void json_close(json_writer *w)
{
    if (w->depth <= 0)
        return;
    w->depth--;
    if (w->pretty && w->depth == 0)
        fputc('\n', w->f);
    fputc(w->depth < JSON_MAX_DEPTH ? w->closer[w->depth] : '}', w->f);
}

void json_string(json_writer *w, const char *key, const char *text)
{
    member(w, key);
    if (text)
        put_escaped(w->f, text);
    else
        fputs("null", w->f);
}

void json_number_digits(json_writer *w, const char *key, double v, int digits)
{
    member(w, key);
    if (isfinite(v))
        fprintf(w->f, "%.*g", digits, v);
    else
        fputs("null", w->f); /* NaN and Inf are not JSON */
}

void json_number(json_writer *w, const char *key, double v)
{
    json_number_digits(w, key, v, 17);
}

void json_int(json_writer *w, const char *key, long long v)
{
    member(w, key);
    fprintf(w->f, "%lld", v);
}

void json_uint(json_writer *w, const char *key, unsigned long long v)
{
    member(w, key);
    fprintf(w->f, "%llu", v);
}

void json_bool(json_writer *w, const char *key, int v)
{
    member(w, key);
    fputs(v ? "true" : "false", w->f);
}

void json_null(json_writer *w, const char *key)
{
    member(w, key);
    fputs("null", w->f);
}
