/* records.h - the records a file-reader target writes before damaging
 * the file: after the damage spec, each record is a little-endian u16
 * length and that many bytes (a short last record is taken as it is). */
#ifndef CV_FUZZ_RECORDS_H
#define CV_FUZZ_RECORDS_H

#include <stddef.h>
#include <stdint.h>

/* The next record from *data: 1 with *rec and *len, 0 at the end. */
static inline int fuzz_next_record(const uint8_t **data, size_t *size,
                                   const uint8_t **rec, size_t *len)
{
    if (*size < 2)
        return 0;
    size_t n = (size_t)(*data)[0] | (size_t)(*data)[1] << 8;
    *data += 2;
    *size -= 2;
    if (n > *size)
        n = *size;
    *rec = *data;
    *len = n;
    *data += n;
    *size -= n;
    return 1;
}

#endif
