/*
 * upflow's compiled row kernel: one pass over a region of whole CSV rows.
 *
 * Built by upflow/core/kernel_build.py (`gcc -O3 -shared -nostdlib`: no libc at all, so the
 * library loads on any x86_64 Linux, Lambda's Amazon Linux included) and called through
 * ctypes by upflow/core/kernel.py. It is an accelerator, not a second definition of the rules: for every row it
 * either decides exactly what the scalar reference (upflow/core/rules.py: scalar_row with
 * documents.classify_document and money.parse_parts) decides, or hands the row back to
 * Python as FALLBACK. A property test proves kernel == scalar on random files.
 *
 * Records and fields follow csv.reader (upflow/core/dialect.py, TRANSITIONS): a record ends at
 * the first "\r" or "\n" outside quotes (a "\n" right after that "\r" belongs to it); a quote
 * opens a quoted field only as the field's first byte, elsewhere in an unquoted field it is a
 * literal; inside quotes "" is one quote and another quote closes the quoting (what follows,
 * up to the delimiter, is still the field's). Line breaks are "\n", "\r\n" and a lone "\r".
 *
 * Per record:
 *   - longer than max_row, undecodable (strict UTF-8 / the encoding's undefined bytes),
 *     a judged field with a quote (but "X" quoted as a whole is judged as X), a space, a
 *     non-ASCII byte, blank or over-long,
 *     the last record of the file without a terminator                 -> FALLBACK
 *   - blank (nothing before its terminator)                         -> skipped, as the reference
 *   - wrong number of fields                                        -> FIELDS exception
 *   - document or amount invalid                                    -> INVALID exception (codes)
 *   - valid: summed into an open-addressing table keyed by the normalised document
 *     (CPF: its 11 digits as a number; CNPJ: its first 12 characters in base 36; shifted left
 *     by one bit, set for a CNPJ).
 *
 * The call stops early (status != DONE, state[S_POS] = next row) when the exception
 * buffer is full, the table is half full, or a sum would overflow int64; Python then
 * drains, grows, or lets the scalar reference finish the region. A record still open at hi
 * (no terminator) is left to Python (state[S_OPEN] = its start) unless params[P_EOF] says hi
 * is the end of the file.
 */
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef int64_t i64;
typedef uint64_t u64;
typedef uint8_t u8;
typedef uint32_t u32;

#define EXPORT __attribute__((visibility("default")))
#define EMPTY_KEY UINT64_MAX
#define MAX_FIELD_BYTES 64

/* state[] slots, shared with kernel.py */
enum { S_POS, S_LINES, S_ROWS_TOTAL, S_ROWS_VALID, S_ROWS_INVALID, S_CENTS, S_NEXC, S_USED, S_STATUS, S_OPEN, S_LEN };
enum { ST_DONE = 0, ST_EXC_FULL = 1, ST_TABLE_FULL = 2, ST_OVERFLOW = 3 };
/* params[] slots */
enum { P_DELIM, P_NCOLS, P_DOC_I, P_AMT_I, P_MAX_ROW, P_UTF8, P_EXC_CAP, P_TABLE_CAP, P_EOF, P_LEN };
/* exception rows: kind and columns */
enum { K_FALLBACK = 0, K_FIELDS = 1, K_INVALID = 2 };
enum { X_KIND, X_START, X_END, X_LINE, X_NFIELDS, X_DOC, X_DOC_N, X_AMT, X_DS, X_DE, X_AS, X_AE, X_COLS };
/* document verdicts (0 = valid) */
enum { D_VALID = 0, D_CPF_REPEATED, D_CPF_CHECK, D_CNPJ_REPEATED, D_CNPJ_CHECK, D_LENGTH, D_FALLBACK };
/* amount verdicts (0 = valid) */
enum { A_VALID = 0, A_NOT_MONEY, A_AMBIGUOUS, A_DECIMALS, A_GROUPING, A_TOO_LARGE, A_FALLBACK };

#define MAX_INTEGER_DIGITS 15
#define MAX_FIELDS 256

static const int CNPJ_W1[12] = {5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
static const int CNPJ_W2[13] = {6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};

static inline int is_digit(u8 c) { return (u8)(c - '0') < 10; }

/*
 * classify_document for an ASCII field. Characters are kept as ord(c) - 48 (uppercased), the
 * value validate-docbr weighs: 0-9 for digits, 17-42 for letters. Anything but digits,
 * letters, '.', '-' and '/' (spaces, quotes, other bytes; or a blank field) -> FALLBACK.
 */
static int judge_document(const u8 *s, i64 len, u64 *key, int *n_out) {
    u8 v[16];
    int n = 0, cnpj_only = 0; /* a letter or '/' rules out a CPF */
    if (len == 0 || len > MAX_FIELD_BYTES) return D_FALLBACK;
    for (i64 i = 0; i < len; i++) {
        const u8 c = s[i];
        const u8 digit = (u8)(c - '0'), letter = (u8)((c | 0x20) - 'a');
        if (digit < 10) {
            if (n < 16) v[n] = digit;
            n++;
        } else if (letter < 26) {
            if (n < 16) v[n] = (u8)(letter + 17);
            n++;
            cnpj_only = 1;
        } else if (c == '/') {
            cnpj_only = 1;
        } else if (c != '.' && c != '-') {
            return D_FALLBACK;
        }
    }
    *n_out = n;
    if (!cnpj_only && n <= 11) { /* CPF: left-padded with zeros to 11 digits */
        u8 padded[11];
        const u8 *d = v;
        if (n < 11) {
            for (int i = 0; i < 11; i++) padded[i] = i < 11 - n ? 0 : v[i - (11 - n)];
            d = padded;
        }
        int diff = 0, t1 = 0, sum = 0;
        for (int i = 1; i < 11; i++) diff |= d[i] ^ d[0];
        if (!diff) return D_CPF_REPEATED;
        for (int i = 0; i < 9; i++) {
            t1 += d[i] * (10 - i);
            sum += d[i];
        }
        const int t2 = t1 + sum + 2 * d[9]; /* weights 11..2 are weights 10..2 plus one */
        int dv1 = t1 * 10 % 11, dv2 = t2 * 10 % 11;
        if (dv1 == 10) dv1 = 0;
        if (dv2 == 10) dv2 = 0;
        if (dv1 != d[9] || dv2 != d[10]) return D_CPF_CHECK;
        u64 k = 0;
        for (int i = 0; i < 11; i++) k = k * 10 + d[i];
        *key = k << 1;
        return D_VALID;
    }
    if (n != 14) return D_LENGTH;
    int diff = 0, t1 = 0, t2 = 0;
    for (int i = 1; i < 14; i++) diff |= v[i] ^ v[0];
    if (!diff) return D_CNPJ_REPEATED;
    for (int i = 0; i < 12; i++) t1 += v[i] * CNPJ_W1[i];
    for (int i = 0; i < 13; i++) t2 += v[i] * CNPJ_W2[i];
    const int r1 = t1 % 11, r2 = t2 % 11;
    if (v[12] != (r1 < 2 ? 0 : 11 - r1) || v[13] != (r2 < 2 ? 0 : 11 - r2)) return D_CNPJ_CHECK;
    u64 k = 0;
    for (int i = 0; i < 12; i++) k = k * 36 + (u64)(v[i] < 10 ? v[i] : v[i] - 7); /* base 36: A = 10 */
    *key = (k << 1) | 1;
    return D_VALID;
}

/* Digits grouped as ^[0-9]{1,3}(?:SEP[0-9]{3})+$ (s holds only digits and separators). */
static int grouped(const u8 *s, i64 len, u8 sep) {
    i64 first = 0;
    while (first < len && s[first] != sep) first++;
    if (first < 1 || first > 3 || first == len) return 0;
    for (i64 i = first; i < len; i += 4)
        if (len - i < 4 || s[i] != sep || !is_digit(s[i + 1]) || !is_digit(s[i + 2]) || !is_digit(s[i + 3]))
            return 0;
    return 1;
}

/*
 * The verdict on a field the amount pattern does not match: FALLBACK when the reference sees
 * it differently -- blank (missing_field), whitespace other than the space (Python's \s also
 * takes tabs, NBSP...), a quote (unquoting) -- else not_money.
 */
static int amount_unmatched(const u8 *s, i64 len) {
    int blank = 1;
    for (i64 i = 0; i < len; i++) {
        const u8 c = s[i];
        if (c < 0x20 || c >= 0x7f || c == '"') return A_FALLBACK;
        blank &= c == ' ';
    }
    return blank ? A_FALLBACK : A_NOT_MONEY;
}

/* money.parse_parts; on a match the field holds only spaces, signs, "R$", parentheses, digits, '.', ','. */
static int judge_amount(const u8 *s, i64 len, i64 *cents) {
    if (len == 0 || len > MAX_FIELD_BYTES) return A_FALLBACK;
    i64 i = 0;
#define SKIP_SPACES() while (i < len && s[i] == ' ') i++
    SKIP_SPACES();
    int paren = 0, close = 0;
    u8 s1 = 0, s2 = 0;
    if (i < len && s[i] == '(') { paren = 1; i++; SKIP_SPACES(); }
    if (i < len && (s[i] == '-' || s[i] == '+')) s1 = s[i++];
    SKIP_SPACES();
    if (i + 1 < len && s[i] == 'R' && s[i + 1] == '$') i += 2;
    SKIP_SPACES();
    if (i < len && (s[i] == '-' || s[i] == '+')) s2 = s[i++];
    SKIP_SPACES();
    if (i >= len || !is_digit(s[i])) return amount_unmatched(s, len);
    const i64 num0 = i;
    u64 value = 0; /* all digits of the number (only used when it has at most 17) */
    int ndigits = 0, dots = 0, commas = 0;
    i64 last_sep = -1;
    for (; i < len; i++) {
        const u8 c = s[i], digit = (u8)(c - '0');
        if (digit < 10) {
            value = value * 10 + digit;
            ndigits++;
        } else if (c == '.') {
            dots++;
            last_sep = i;
        } else if (c == ',') {
            commas++;
            last_sep = i;
        } else {
            break;
        }
    }
    const i64 num1 = i;
    if (!is_digit(s[num1 - 1])) return amount_unmatched(s, len);
    SKIP_SPACES();
    if (i < len && s[i] == ')') { close = 1; i++; }
    SKIP_SPACES();
#undef SKIP_SPACES
    if (i != len) return amount_unmatched(s, len);
    if (paren != close || (s1 && s2) || (paren && (s1 || s2))) return A_NOT_MONEY;
    const u8 *num = s + num0;
    const i64 nlen = num1 - num0, k = last_sep - num0;
    int ndec = 0;
    if (dots && commas) { /* the last separator is the decimal one, the other groups digits */
        const u8 dec_sep = num[k];
        if ((dec_sep == '.' ? dots : commas) > 1) return A_GROUPING;
        ndec = (int)(nlen - k - 1);
        if (ndec > 2) return A_DECIMALS;
        if (!grouped(num, k, dec_sep == '.' ? ',' : '.')) return A_GROUPING;
    } else if (dots + commas >= 2) {
        if (!grouped(num, nlen, num[k])) return A_GROUPING;
    } else if (dots + commas == 1) {
        ndec = (int)(nlen - k - 1);
        if (ndec == 3 && k <= 3) return A_AMBIGUOUS;
        if (ndec > 2) return A_DECIMALS;
    }
    if (ndigits - ndec > MAX_INTEGER_DIGITS) return A_TOO_LARGE;
    value *= ndec == 0 ? 100 : ndec == 1 ? 10 : 1;
    *cents = paren || s1 == '-' || s2 == '-' ? -(i64)value : (i64)value;
    return A_VALID;
}

/*
 * Length of the well-formed UTF-8 sequence starting at s[0] (a byte >= 0x80), 0 if it is not
 * one: Python's strict decoder accepts exactly these (Unicode table 3-7). avail > 0 bytes
 * may be read.
 */
static int utf8_sequence(const u8 *s, i64 avail) {
    const u8 c = s[0];
    int need;
    u8 lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else return 0;
    if (need >= avail) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int k = 2; k <= need; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return need + 1;
}

/*
 * Structural bytes ("\n", "\r", '"', the delimiter, bytes >= 0x80) in order: 16 bytes are compared
 * at once (SSE2, the x86_64 baseline) into a bit mask whose set bits are popped one by one.
 */
typedef struct {
    const u8 *buf;
    i64 base, hi;
    u32 mask;
    u8 delim;
} Scanner;

static inline u32 block_mask(const Scanner *s, i64 at) {
#ifdef __SSE2__
    if (at + 16 <= s->hi) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(s->buf + at));
        const __m128i m = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))),
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8((char)s->delim))));
        /* movemask takes each byte's top bit: compares give 0xFF, bytes >= 0x80 have it already */
        return (u32)_mm_movemask_epi8(_mm_or_si128(m, v));
    }
#endif
    u32 m = 0;
    for (int k = 0; k < 16 && at + k < s->hi; k++) {
        const u8 c = s->buf[at + k];
        if (c == '\n' || c == '\r' || c == '"' || c == s->delim || c >= 0x80) m |= 1u << k;
    }
    return m;
}

static inline void scanner_init(Scanner *s, const u8 *buf, i64 pos, i64 hi, u8 delim) {
    s->buf = buf;
    s->hi = hi;
    s->delim = delim;
    s->base = pos;
    s->mask = pos < hi ? block_mask(s, pos) : 0;
}

/* Position of the next structural byte, or hi. */
static inline i64 scanner_next(Scanner *s) {
    while (s->mask == 0) {
        s->base += 16;
        if (s->base >= s->hi) return s->hi;
        s->mask = block_mask(s, s->base);
    }
    const i64 at = s->base + __builtin_ctz(s->mask);
    s->mask &= s->mask - 1;
    return at;
}

/* The byte at q + 1 is not structural after all (the "\n" of a "\r\n" at q): drop its bit. */
static inline void scanner_drop_next(Scanner *s, i64 q) {
    const i64 k = q + 1 - s->base;
    if (k < 16) s->mask &= ~(1u << k);
}

/*
 * A judged field quoted as a whole, "X" with no quote inside X, is X (csv.reader's value):
 * its bounds move inside the quotes. Any other quote stays, and the judges hand the row back.
 */
static inline void unquote_field(const u8 *buf, i64 *s, i64 *e) {
    if (*e - *s < 2 || *e - *s > MAX_FIELD_BYTES + 2 || buf[*s] != '"' || buf[*e - 1] != '"') return;
    for (i64 i = *s + 1; i < *e - 1; i++)
        if (buf[i] == '"') return;
    (*s)++;
    (*e)--;
}

/* Set bits of a 16-bit mask (no libgcc: -nostdlib has no __popcountdi2). */
static inline i64 popcount16(u32 x) {
    x = x - ((x >> 1) & 0x5555);
    x = (x & 0x3333) + ((x >> 2) & 0x3333);
    x = (x + (x >> 4)) & 0x0F0F;
    return (i64)((x + (x >> 8)) & 0x1F);
}

/*
 * Line breaks in buf[lo, hi) (dialect.line_breaks): each "\n", and each "\r" not followed by
 * a "\n" (a "\r" at hi - 1 counts: the caller knows what follows hi). Inside quotes too.
 */
EXPORT i64 upflow_line_breaks(const u8 *buf, i64 lo, i64 hi) {
    i64 n = 0, i = lo;
#ifdef __SSE2__
    const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    for (; i + 17 <= hi; i += 16) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(buf + i));
        const __m128i next = _mm_loadu_si128((const __m128i *)(buf + i + 1));
        const __m128i lone_cr = _mm_andnot_si128(_mm_cmpeq_epi8(next, lf), _mm_cmpeq_epi8(v, cr));
        n += popcount16((u32)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), lone_cr)));
    }
#endif
    for (; i < hi; i++)
        if (buf[i] == '\n' || (buf[i] == '\r' && (i + 1 >= hi || buf[i + 1] != '\n'))) n++;
    return n;
}

/* Fibonacci hashing: the top bits of the product (cap is a power of two, at least 2). */
static inline int shift_of(i64 cap) { return 64 - __builtin_ctzll((u64)cap); }
static inline u64 slot_of(u64 key, int shift) { return key * 0x9E3779B97F4A7C15ULL >> shift; }

/* One table entry: a normalised document and its sums (one cache access per valid row). */
typedef struct {
    u64 key;
    i64 rows;
    i64 cents;
} Entry;

/* Re-insert every entry of the old table into the (empty, larger) new one. */
EXPORT void upflow_rehash(const Entry *old, i64 old_cap, Entry *table, i64 cap) {
    const u64 mask = (u64)cap - 1;
    const int shift = shift_of(cap);
    for (i64 j = 0; j < old_cap; j++) {
        if (old[j].key == EMPTY_KEY) continue;
        u64 h = slot_of(old[j].key, shift);
        while (table[h].key != EMPTY_KEY) h = (h + 1) & mask;
        table[h] = old[j];
    }
}

static inline void swap_entries(Entry *a, Entry *b) {
    const Entry t = *a;
    *a = *b;
    *b = t;
}

/* Heapsort by key (no libc, no scratch memory). */
static void sift_down(Entry *a, i64 root, i64 n) {
    for (;;) {
        i64 child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && a[child + 1].key > a[child].key) child++;
        if (a[root].key >= a[child].key) return;
        swap_entries(&a[root], &a[child]);
        root = child;
    }
}

static void sort_by_key(Entry *a, i64 n) {
    for (i64 i = n / 2 - 1; i >= 0; i--) sift_down(a, i, n);
    for (i64 end = n - 1; end > 0; end--) {
        swap_entries(&a[0], &a[end]);
        sift_down(a, 0, end);
    }
}

/*
 * Turn the table into a list of sums for Python (it is no hash table afterwards): the used
 * entries move to the front, CPFs before CNPJs, each part sorted by its value (the order of
 * the documents' texts) and each key replaced by that value (the type bit dropped). Returns
 * the number of entries; *n_cpf receives the number of CPFs.
 */
EXPORT i64 upflow_compact(Entry *table, i64 cap, i64 *n_cpf) {
    i64 n = 0;
    for (i64 j = 0; j < cap; j++)
        if (table[j].key != EMPTY_KEY) table[n++] = table[j];
    i64 cpf = 0;
    for (i64 j = 0; j < n; j++)
        if (!(table[j].key & 1)) swap_entries(&table[j], &table[cpf++]);
    sort_by_key(table, cpf);
    sort_by_key(table + cpf, n - cpf);
    for (i64 j = 0; j < n; j++) table[j].key >>= 1;
    *n_cpf = cpf;
    return n;
}

/*
 * Process the records starting in buf[state[S_POS], hi): state[S_POS] is a record start.
 * bad[256] flags bytes that make a row undecodable in a single-byte
 * encoding (params[P_UTF8] = 0); with P_UTF8 = 1 rows with bytes >= 0x80 are checked as UTF-8.
 */
EXPORT i64 upflow_scan(const u8 *buf, i64 hi, const i64 *params, const u8 *bad, i64 *state, i64 *exc,
                       Entry *table) {
    const u8 delim = (u8)params[P_DELIM];
    const i64 ncols = params[P_NCOLS], doc_i = params[P_DOC_I], amt_i = params[P_AMT_I];
    const i64 max_row = params[P_MAX_ROW], exc_cap = params[P_EXC_CAP];
    const int utf8 = (int)params[P_UTF8], at_eof = (int)params[P_EOF];
    const u64 mask = (u64)params[P_TABLE_CAP] - 1, table_limit = (u64)params[P_TABLE_CAP] / 2;
    const int shift = shift_of(params[P_TABLE_CAP]);
    i64 pos = state[S_POS], lines = state[S_LINES];
    Scanner sc;
    scanner_init(&sc, buf, pos, hi, delim);

    i64 n_total = 0, n_valid = 0, n_invalid = 0, cents_total = state[S_CENTS];
    i64 nexc = state[S_NEXC];
    u64 used = (u64)state[S_USED];
    i64 status = ST_DONE, open = hi;
    i64 fstart[MAX_FIELDS + 1];

    while (pos < hi) {
        if (nexc >= exc_cap) { status = ST_EXC_FULL; break; }
        if (used >= table_limit) { status = ST_TABLE_FULL; break; }
        const i64 start = pos;
        i64 q, nd = 0, nl = 0;
        int quoted = 0;     /* IN_QUOTED_FIELD */
        i64 closing = -2;   /* the quote that last closed a quoted part (QUOTE_IN_QUOTED_FIELD after it) */
        i64 field = start;  /* first byte of the field under way */
        int undecodable = 0;
        i64 sequence_end = 0; /* bytes before it belong to a UTF-8 sequence already checked */
        fstart[0] = start;
        for (;;) {
            q = scanner_next(&sc);
            if (q >= hi) { q = hi; break; }
            if (q < start) continue; /* the "\n" of the "\r\n" that ended the previous record */
            const u8 c = buf[q];
            if (c >= 0x80) {
                if (q >= sequence_end) { /* a byte >= 0x80 starting a character */
                    if (utf8) {
                        const int n = utf8_sequence(buf + q, hi - q);
                        if (n == 0) undecodable = 1;
                        else sequence_end = q + n;
                    } else if (bad[c]) {
                        undecodable = 1;
                    }
                }
            } else if (c == '"') {
                if (quoted) { quoted = 0; closing = q; }  /* closes, or the first of a "" */
                else if (q == closing + 1) quoted = 1;    /* "" inside quotes: one quote */
                else if (q == field) quoted = 1;          /* opens a quoted field */
                /* else: a quote inside an unquoted field is a literal */
            } else if (quoted) { /* a delimiter or a line break inside quotes: content */
                if (c == '\n' || (c == '\r' && (q + 1 >= hi || buf[q + 1] != '\n'))) nl++;
            } else if (c == delim) {
                if (++nd < MAX_FIELDS) fstart[nd] = q + 1;
                field = q + 1;
            } else {
                break; /* "\r" or "\n" outside quotes: the record ends */
            }
        }
        if (q >= hi) { /* no terminator before hi */
            open = start;
            if (!at_eof) { pos = start; break; } /* the caller reads the rest of it */
        }
        const i64 end = q; /* the record's terminator (or hi at the end of the file) */
        const i64 line = lines;
        if (end < hi) lines += nl + 1; /* the terminator is one line break, "\r\n" included */
        pos = end + 1;
        if (end < hi && buf[end] == '\r' && pos < hi && buf[pos] == '\n') {
            pos++;
            scanner_drop_next(&sc, end);
        }
        if (end == start) continue; /* a blank line: csv.reader's [] */
        int kind = -1, dv = D_FALLBACK, av = A_FALLBACK, doc_n = 0;
        i64 ds = 0, de = 0, as = 0, ae = 0;
        u64 key = 0;
        i64 c = 0;
        if (end - start > max_row || end >= hi || undecodable) kind = K_FALLBACK;
        if (kind < 0 && nd + 1 != ncols) kind = K_FIELDS;
        if (kind < 0) {
            ds = fstart[doc_i];
            de = doc_i == ncols - 1 ? end : fstart[doc_i + 1] - 1;
            as = fstart[amt_i];
            ae = amt_i == ncols - 1 ? end : fstart[amt_i + 1] - 1;
            unquote_field(buf, &ds, &de);
            unquote_field(buf, &as, &ae);
            dv = judge_document(buf + ds, de - ds, &key, &doc_n);
            av = dv == D_FALLBACK ? A_FALLBACK : judge_amount(buf + as, ae - as, &c);
            if (dv == D_FALLBACK || av == A_FALLBACK) kind = K_FALLBACK;
            else if (dv != D_VALID || av != A_VALID) kind = K_INVALID;
        }
        if (kind < 0) { /* valid: sum it */
            u64 h = slot_of(key, shift);
            while (table[h].key != EMPTY_KEY && table[h].key != key) h = (h + 1) & mask;
            Entry *e = &table[h];
            const int fresh = e->key == EMPTY_KEY;
            i64 new_cents, new_total;
            if (__builtin_add_overflow(fresh ? 0 : e->cents, c, &new_cents) ||
                __builtin_add_overflow(cents_total, c, &new_total)) {
                status = ST_OVERFLOW;
                pos = start;
                lines = line;
                break;
            }
            if (fresh) {
                e->key = key;
                e->rows = 0;
                used++;
            }
            e->rows += 1;
            e->cents = new_cents;
            cents_total = new_total;
            n_total++;
            n_valid++;
            continue;
        }
        if (kind != K_FALLBACK) {
            n_total++;
            n_invalid++;
        }
        i64 *x = exc + nexc * X_COLS;
        x[X_KIND] = kind;
        x[X_START] = start;
        x[X_END] = end;
        x[X_LINE] = line;
        x[X_NFIELDS] = nd + 1;
        x[X_DOC] = dv;
        x[X_DOC_N] = doc_n;
        x[X_AMT] = av;
        x[X_DS] = ds;
        x[X_DE] = de;
        x[X_AS] = as;
        x[X_AE] = ae;
        nexc++;
    }
    state[S_POS] = pos;
    state[S_LINES] = lines;
    state[S_ROWS_TOTAL] += n_total;
    state[S_ROWS_VALID] += n_valid;
    state[S_ROWS_INVALID] += n_invalid;
    state[S_CENTS] = cents_total;
    state[S_NEXC] = nexc;
    state[S_USED] = (i64)used;
    state[S_STATUS] = status;
    if (open < hi) state[S_OPEN] = open;
    return status;
}

/* ------------------------------------------------------------------------------------------
 * Document texts of a compacted table (kernel.py's flush), in C rather than per document in
 * Python.
 */

/* CPF: the 11 digits of value. */
static inline void cpf_text(u64 value, u8 *out) {
    for (int i = 10; i >= 0; i--) {
        out[i] = (u8)('0' + value % 10);
        value /= 10;
    }
}

/* CNPJ: the 12 base-36 characters of value, then the check digits (documents.py's rule, with
 * each character weighed as ord(c) - 48, as validate-docbr does). */
static inline void cnpj_text(u64 value, u8 *out) {
    static const u8 digits36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int i = 11; i >= 0; i--) {
        out[i] = digits36[value % 36];
        value /= 36;
    }
    int t1 = 0, t2 = 0;
    for (int i = 0; i < 12; i++) {
        t1 += (out[i] - '0') * CNPJ_W1[i];
        t2 += (out[i] - '0') * CNPJ_W2[i];
    }
    const int r1 = t1 % 11, dv1 = r1 < 2 ? 0 : 11 - r1;
    const int r2 = (t2 + CNPJ_W2[12] * dv1) % 11, dv2 = r2 < 2 ? 0 : 11 - r2;
    out[12] = (u8)('0' + dv1);
    out[13] = (u8)('0' + dv2);
}

/* memcmp-like order of two byte strings (a shorter prefix first), as Python orders str/bytes. */
static inline int compare_bytes(const u8 *a, i64 na, const u8 *b, i64 nb) {
    const i64 n = na < nb ? na : nb;
    for (i64 i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

/*
 * The documents of a table upflow_compact has compacted (n entries: n_cpf CPFs, then CNPJs,
 * each part sorted by value, which is its texts' order), merged into text order: each
 * document's text and a '\n' into text, its entry into merged and its type (0 CPF, 1 CNPJ)
 * into types. Returns the bytes written to text (at most 15 per entry).
 */
EXPORT i64 upflow_texts(const Entry *table, i64 n, i64 n_cpf, u8 *text, Entry *merged, u8 *types) {
    i64 i = 0, j = n_cpf, k = 0, at = 0;
    u8 cpf[11], cnpj[14];
    if (i < n_cpf) cpf_text(table[i].key, cpf);
    if (j < n) cnpj_text(table[j].key, cnpj);
    while (i < n_cpf || j < n) {
        const int take_cpf = j >= n || (i < n_cpf && compare_bytes(cpf, 11, cnpj, 14) < 0);
        const u8 *doc = take_cpf ? cpf : cnpj;
        const int len = take_cpf ? 11 : 14;
        for (int c = 0; c < len; c++) text[at + c] = doc[c];
        text[at + len] = '\n';
        at += len + 1;
        types[k] = (u8)!take_cpf;
        if (take_cpf) {
            merged[k++] = table[i++];
            if (i < n_cpf) cpf_text(table[i].key, cpf);
        } else {
            merged[k++] = table[j++];
            if (j < n) cnpj_text(table[j].key, cnpj);
        }
    }
    return at;
}

/* ------------------------------------------------------------------------------------------
 * Consolidation (upflow/core/consolidation.py, whose pure-Python reference this equals; a
 * property test holds them equal): the document hash, a chunk's partial object, a shard's sums.
 */

/* MurmurHash3's 64-bit finaliser: a bijection in which every input bit flips each output bit
 * with probability ~1/2. */
static inline u64 fmix64(u64 h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

/* consolidation.document_hash: h = length * 0x9E3779B97F4A7C15, then h = fmix64(h ^ w) for
 * each 8-byte little-endian word w of the text (the last one padded with zero bytes). */
static inline u64 document_hash(const u8 *s, i64 n) {
    u64 h = (u64)n * 0x9E3779B97F4A7C15ULL;
    for (i64 i = 0; i < n; i += 8) {
        u64 w = 0;
        for (int k = 0; k < 8 && i + k < n; k++) w |= (u64)s[i + k] << (8 * k);
        h = fmix64(h ^ w);
    }
    return h;
}

/* A byte the partial format cannot carry in a document or type: it would cut the record. */
static inline int unfit_byte(u8 c) { return c >= 0x80 || c == ',' || c == '\n' || c == '\r'; }

/* Decimal text of v at p; returns the end. */
static inline u8 *put_int(u8 *p, i64 v) {
    u64 u = (u64)v;
    if (v < 0) {
        *p++ = '-';
        u = 0 - u;
    }
    u8 tmp[20];
    int k = 0;
    do {
        tmp[k++] = (u8)('0' + u % 10);
        u /= 10;
    } while (u);
    while (k) *p++ = tmp[--k];
    return p;
}

/* Split a '\n'-joined text into exactly n pieces with printable bytes only: start[i] is
 * piece i's first byte, start[n] is len + 1. 0 when it is not n such pieces. */
static int split_lines(const u8 *s, i64 len, i64 n, i64 *start) {
    if (n == 0) return len == 0;
    i64 k = 0;
    start[0] = 0;
    for (i64 i = 0; i < len; i++) {
        const u8 c = s[i];
        if (c == '\n') {
            if (++k >= n) return 0;
            start[k] = i + 1;
        } else if (unfit_byte(c)) {
            return 0;
        }
    }
    if (k != n - 1) return 0;
    start[n] = len + 1;
    return 1;
}

/* Heapsort of the record numbers idx[0, m) by their documents' texts. */
typedef struct {
    const u8 *docs;
    const i64 *start;
} Texts;

static inline int text_less(const Texts *t, i64 a, i64 b) {
    return compare_bytes(t->docs + t->start[a], t->start[a + 1] - 1 - t->start[a], t->docs + t->start[b],
                         t->start[b + 1] - 1 - t->start[b]) < 0;
}

static void sift_texts(const Texts *t, i64 *idx, i64 root, i64 m) {
    for (;;) {
        i64 child = 2 * root + 1;
        if (child >= m) return;
        if (child + 1 < m && text_less(t, idx[child], idx[child + 1])) child++;
        if (!text_less(t, idx[root], idx[child])) return;
        const i64 x = idx[root];
        idx[root] = idx[child];
        idx[child] = x;
        root = child;
    }
}

static void sort_texts(const Texts *t, i64 *idx, i64 m) {
    for (i64 i = m / 2 - 1; i >= 0; i--) sift_texts(t, idx, i, m);
    for (i64 end = m - 1; end > 0; end--) {
        const i64 x = idx[0];
        idx[0] = idx[end];
        idx[end] = x;
        sift_texts(t, idx, 0, end);
    }
}

static void sift_u64(u64 *a, i64 root, i64 m) {
    for (;;) {
        i64 child = 2 * root + 1;
        if (child >= m) return;
        if (child + 1 < m && a[child + 1] > a[child]) child++;
        if (a[root] >= a[child]) return;
        const u64 x = a[root];
        a[root] = a[child];
        a[child] = x;
        root = child;
    }
}

static void sort_u64(u64 *a, i64 m) {
    for (i64 i = m / 2 - 1; i >= 0; i--) sift_u64(a, i, m);
    for (i64 end = m - 1; end > 0; end--) {
        const u64 x = a[0];
        a[0] = a[end];
        a[end] = x;
        sift_u64(a, 0, end);
    }
}

static inline void put_be64(u8 *p, u64 v) {
    for (int k = 7; k >= 0; k--) {
        p[k] = (u8)v;
        v >>= 8;
    }
}

/*
 * consolidation.encode_partial for n records given as columns: docs and types are the texts
 * joined by '\n', rows and cents int64. Writes the index ((2^bucket_bits + 1) big-endian
 * offsets) at index_out and the records ("document,type,rows,cents\n" in (bucket, document)
 * order) at records_out, and the sketch (the sketch_cap smallest distinct hashes, ascending)
 * at sketch with its length at *sketch_n. scratch: 5n + 2^bucket_bits + 3 words.
 * Returns the records' length; -1 when the columns are not n documents and n types the
 * format can carry, -2 when a document is there twice (the reference then raises).
 */
EXPORT i64 upflow_partial(const u8 *docs, i64 docs_len, const u8 *types, i64 types_len, const i64 *rows,
                          const i64 *cents, i64 n, i64 bucket_bits, i64 *scratch, u8 *index_out,
                          u8 *records_out, u64 *sketch, i64 sketch_cap, i64 *sketch_n) {
    const i64 buckets = (i64)1 << bucket_bits;
    i64 *dstart = scratch, *tstart = dstart + n + 1, *order = tstart + n + 1;
    u64 *hash = (u64 *)(order + n), *sorted_hash = hash + n;
    i64 *first = (i64 *)(sorted_hash + n); /* buckets + 1 counters, then starts */
    *sketch_n = 0;
    if (!split_lines(docs, docs_len, n, dstart) || !split_lines(types, types_len, n, tstart)) return -1;
    for (i64 b = 0; b <= buckets; b++) first[b] = 0;
    const int shift = 64 - (int)bucket_bits;
    for (i64 i = 0; i < n; i++) {
        hash[i] = document_hash(docs + dstart[i], dstart[i + 1] - 1 - dstart[i]);
        first[(hash[i] >> shift) + 1]++;
    }
    for (i64 b = 0; b < buckets; b++) first[b + 1] += first[b];
    for (i64 i = 0; i < n; i++) order[first[hash[i] >> shift]++] = i; /* first[b]: end of bucket b */
    const Texts texts = {docs, dstart};
    u8 *p = records_out;
    i64 lo = 0;
    for (i64 b = 0; b < buckets; b++) {
        const i64 hi = first[b];
        put_be64(index_out + 8 * b, (u64)(p - records_out));
        sort_texts(&texts, order + lo, hi - lo);
        for (i64 k = lo; k < hi; k++) {
            const i64 i = order[k];
            const i64 dlen = dstart[i + 1] - 1 - dstart[i], tlen = tstart[i + 1] - 1 - tstart[i];
            if (k > lo) {
                const i64 prev = order[k - 1];
                if (compare_bytes(docs + dstart[prev], dstart[prev + 1] - 1 - dstart[prev], docs + dstart[i],
                                  dlen) == 0)
                    return -2;
            }
            for (i64 c = 0; c < dlen; c++) *p++ = docs[dstart[i] + c];
            *p++ = ',';
            for (i64 c = 0; c < tlen; c++) *p++ = types[tstart[i] + c];
            *p++ = ',';
            p = put_int(p, rows[i]);
            *p++ = ',';
            p = put_int(p, cents[i]);
            *p++ = '\n';
        }
        /* The buckets come in hash order, so the sketch is the start of the sorted hashes. */
        if (*sketch_n < sketch_cap) {
            for (i64 k = lo; k < hi; k++) sorted_hash[k] = hash[order[k]];
            sort_u64(sorted_hash + lo, hi - lo);
            for (i64 k = lo; k < hi && *sketch_n < sketch_cap; k++)
                if (*sketch_n == 0 || sketch[*sketch_n - 1] != sorted_hash[k]) sketch[(*sketch_n)++] = sorted_hash[k];
        }
        lo = hi;
    }
    put_be64(index_out + 8 * buckets, (u64)(p - records_out));
    return p - records_out;
}

/*
 * A shard's sums (consolidation.reduce_shard): the records of partial pieces summed per
 * document in an open-addressing table whose slots hold the document and type texts.
 * A record this cannot take -- not of the canonical form (printable ASCII texts that fit a
 * slot, '-'? digits), a sum that would leave int64, a type other than the document's first
 * -- becomes an exception line: Python sums it with its own integers (and raises where the
 * reference raises).
 */
#define SUM_TEXT 38
typedef struct {
    u64 hash;
    i64 rows;
    i64 cents;
    u8 doc_len; /* 0: an empty slot */
    u8 type_len;
    u8 text[SUM_TEXT]; /* the document, then the type */
} Sum;

enum { R_POS, R_USED, R_NEXC, R_LEN };

static inline int sum_is(const Sum *s, u64 h, const u8 *doc, i64 dlen) {
    if (s->hash != h || s->doc_len != dlen) return 0;
    for (i64 c = 0; c < dlen; c++)
        if (s->text[c] != doc[c]) return 0;
    return 1;
}

/* '-'? [0-9]+ in s[0, len) as an int64; 0 when it is not that or does not fit. */
static inline int parse_int(const u8 *s, i64 len, i64 *out) {
    i64 i = 0;
    const int negative = len > 0 && s[0] == '-';
    if (negative) i = 1;
    if (i >= len) return 0;
    i64 v = 0;
    for (; i < len; i++) {
        const u8 digit = (u8)(s[i] - '0');
        if (digit > 9) return 0;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, (i64)digit, &v)) return 0;
    }
    /* accumulated negatively: -2^63 fits */
    if (!negative) {
        if (v == INT64_MIN) return 0;
        v = -v;
    }
    *out = v;
    return 1;
}

/* Next ',' in s[i, end), or end. */
static inline i64 next_comma(const u8 *s, i64 i, i64 end) {
    while (i < end && s[i] != ',') i++;
    return i;
}

/*
 * Add the records of buf[state[R_POS], len) to the table (cap slots, a power of two). Stops
 * early, state[R_POS] at the next record, when the table is half full (returns
 * ST_TABLE_FULL: Python grows it) or the exception buffer (pairs start, end) is full
 * (ST_EXC_FULL).
 */
EXPORT i64 upflow_reduce(const u8 *buf, i64 len, i64 *state, Sum *table, i64 cap, i64 *exc, i64 exc_cap) {
    const u64 mask = (u64)cap - 1;
    i64 pos = state[R_POS], used = state[R_USED], nexc = state[R_NEXC];
    i64 status = ST_DONE;
    while (pos < len) {
        if (nexc >= exc_cap) { status = ST_EXC_FULL; break; }
        if (used >= cap / 2) { status = ST_TABLE_FULL; break; }
        i64 end = pos;
        while (end < len && buf[end] != '\n') end++;
        const i64 start = pos;
        pos = end < len ? end + 1 : len;
        /* document, type: printable ASCII but ',' (what an exception line re-reads in Python) */
        const i64 d1 = next_comma(buf, start, end), t1 = d1 < end ? next_comma(buf, d1 + 1, end) : end;
        const i64 r1 = t1 < end ? next_comma(buf, t1 + 1, end) : end;
        const i64 dlen = d1 - start, tlen = t1 - d1 - 1;
        int ok = r1 < end && dlen > 0 && tlen > 0 && dlen + tlen <= SUM_TEXT;
        for (i64 c = start; ok && c < t1; c++)
            if (buf[c] < 0x20 || buf[c] >= 0x7f) ok = 0;
        i64 rows = 0, cents = 0;
        ok = ok && parse_int(buf + t1 + 1, r1 - t1 - 1, &rows) && parse_int(buf + r1 + 1, end - r1 - 1, &cents);
        Sum *s = 0;
        if (ok) {
            const u64 h = document_hash(buf + start, dlen);
            u64 slot = h & mask;
            while (table[slot].doc_len != 0 && !sum_is(&table[slot], h, buf + start, dlen)) slot = (slot + 1) & mask;
            s = &table[slot];
            if (s->doc_len == 0) {
                s->hash = h;
                s->rows = rows;
                s->cents = cents;
                s->doc_len = (u8)dlen;
                s->type_len = (u8)tlen;
                for (i64 c = 0; c < dlen; c++) s->text[c] = buf[start + c];
                for (i64 c = 0; c < tlen; c++) s->text[dlen + c] = buf[d1 + 1 + c];
                used++;
                continue;
            }
            ok = s->type_len == tlen;
            for (i64 c = 0; ok && c < tlen; c++) ok = s->text[dlen + c] == buf[d1 + 1 + c];
            i64 new_rows, new_cents;
            if (ok && !__builtin_add_overflow(s->rows, rows, &new_rows) &&
                !__builtin_add_overflow(s->cents, cents, &new_cents)) {
                s->rows = new_rows;
                s->cents = new_cents;
                continue;
            }
        }
        exc[2 * nexc] = start;
        exc[2 * nexc + 1] = end;
        nexc++;
    }
    state[R_POS] = pos;
    state[R_USED] = used;
    state[R_NEXC] = nexc;
    return status;
}

/* Re-insert every sum of the old table into the (empty, larger) new one. */
EXPORT void upflow_reduce_rehash(const Sum *old, i64 old_cap, Sum *table, i64 cap) {
    const u64 mask = (u64)cap - 1;
    for (i64 j = 0; j < old_cap; j++) {
        if (old[j].doc_len == 0) continue;
        u64 slot = old[j].hash & mask;
        while (table[slot].doc_len != 0) slot = (slot + 1) & mask;
        table[slot] = old[j];
    }
}

static inline int sum_less(const Sum *a, const Sum *b) {
    return compare_bytes(a->text, a->doc_len, b->text, b->doc_len) < 0;
}

static void sift_sums(Sum *a, i64 root, i64 m) {
    for (;;) {
        i64 child = 2 * root + 1;
        if (child >= m) return;
        if (child + 1 < m && sum_less(&a[child], &a[child + 1])) child++;
        if (!sum_less(&a[root], &a[child])) return;
        const Sum x = a[root];
        a[root] = a[child];
        a[child] = x;
        root = child;
    }
}

/*
 * The sums in document order (the table is spent afterwards): documents joined by '\n' into
 * docs, types likewise into types, (rows, cents) pairs into ints. Returns the number of sums;
 * *docs_len and *types_len receive the texts' lengths (with a '\n' after each).
 */
EXPORT i64 upflow_reduce_sorted(Sum *table, i64 cap, u8 *docs, i64 *docs_len, u8 *types, i64 *types_len,
                                i64 *ints) {
    i64 n = 0;
    for (i64 j = 0; j < cap; j++)
        if (table[j].doc_len != 0) table[n++] = table[j];
    for (i64 i = n / 2 - 1; i >= 0; i--) sift_sums(table, i, n);
    for (i64 end = n - 1; end > 0; end--) {
        const Sum x = table[0];
        table[0] = table[end];
        table[end] = x;
        sift_sums(table, 0, end);
    }
    i64 d = 0, t = 0;
    for (i64 i = 0; i < n; i++) {
        const Sum *s = &table[i];
        for (int c = 0; c < s->doc_len; c++) docs[d++] = s->text[c];
        docs[d++] = '\n';
        for (int c = 0; c < s->type_len; c++) types[t++] = s->text[s->doc_len + c];
        types[t++] = '\n';
        ints[2 * i] = s->rows;
        ints[2 * i + 1] = s->cents;
    }
    *docs_len = d;
    *types_len = t;
    return n;
}
