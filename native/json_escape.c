/* What the JSON-line writers share: nt_put_str and nt_put_u64, and the escaping of hostile
 * strings (paths and command names from containers). Every control character is escaped, DEL and
 * C1 included, and so are the bidi marks, embeddings, overrides and isolates that reorder a line,
 * the line and paragraph separators and the byte-order mark (see hidden()): the lines may end up
 * on a terminal. The same set as nydus_top.text.printable. */
#include <string.h>

#include "native.h"

static const char HEX[] = "0123456789abcdef";

/* A character above ASCII that a terminal acts on or that hides how a line reads: C1 controls,
 * the bidi marks (ALM, LRM, RLM), the line and paragraph separators, the bidi embeddings,
 * overrides and isolates, the byte-order mark. */
static int hidden(unsigned cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f
        || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Length of the valid UTF-8 sequence starting at s (n bytes available), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

size_t nt_json_escape(const char *src, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)src;
    char *o = out;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            if (c == '"' || c == '\\')
                *o++ = '\\';
            *o++ = (char)c;
            i++;
        } else if (c <= 0x7f) {
            *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
            *o++ = HEX[c >> 4]; *o++ = HEX[c & 15];
            i++;
        } else {
            size_t len = utf8_seq(s + i, n - i);
            unsigned cp = len == 2 ? ((unsigned)(c & 0x1f) << 6) | (s[i + 1] & 0x3f)
                        : len == 3 ? ((unsigned)(c & 0x0f) << 12) | ((unsigned)(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f)
                        : 0;
            if (cp && hidden(cp)) {
                *o++ = '\\'; *o++ = 'u';
                *o++ = HEX[cp >> 12]; *o++ = HEX[(cp >> 8) & 15]; *o++ = HEX[(cp >> 4) & 15]; *o++ = HEX[cp & 15];
                i += len;
            } else if (len) {
                for (size_t k = 0; k < len; k++)
                    *o++ = (char)s[i + k];
                i += len;
            } else {
                *o++ = '\\'; *o++ = 'u'; *o++ = 'd'; *o++ = 'c';
                *o++ = HEX[c >> 4]; *o++ = HEX[c & 15];
                i++;
            }
        }
    }
    return (size_t)(o - out);
}

char *nt_put_str(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

char *nt_put_u64(char *o, unsigned long long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}
