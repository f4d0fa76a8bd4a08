/*
 * libsrtp interop harness for crates/mbms-core/tests/libsrtp_interop.rs and
 * scripts/bench-vs-libsrtp.sh: drives libsrtp2 (an implementation we did not write) so that
 * the Rust side needs no FFI and no unsafe code.
 *
 * Build:  cc -O2 -pthread -o libsrtp-harness harness.c -lsrtp2     (Debian: libsrtp2-dev)
 *
 * Usage:
 *   libsrtp-harness unprotect <keyfile> <in> <out>
 *   libsrtp-harness protect   <keyfile> <schedule> <in> <out>
 *   libsrtp-harness bench     <seconds> <payload_len> [threads]
 *
 * Packet files: records of a u32 big-endian length followed by that many bytes, repeated.
 * A packet whose second byte (the RTCP packet type) is in 192..=223 is RTCP, anything else
 * RTP (RFC 5761 §4: RTP payload types 64-95 are not used when RTP and RTCP share a stream).
 * On a failed packet the output gets a zero-length record, stderr a line
 * `fail index=<i> error=<libsrtp error code>`; at the end stdout gets
 * `ok=<n> fail=<n> first_error=<code> first_error_index=<i>` (code 0 and index -1: none).
 *
 * Key file (text, '#' starts a comment line):
 *   tag 10|4                 SRTP tag: AES_CM_128_HMAC_SHA1_80 or _32 (SRTCP is always _80)
 *   window <n>               replay window size (default 1024)
 *   key <hex32> salt <hex28> mki <hex>     one line per master key, index 0, 1, ... in order
 *
 * Schedule (protect): which master key (index into the key file) protects each packet,
 * counted over all records (RTP and RTCP):
 *   <k>                      every packet with key k
 *   switch-at=<n1>[,<n2>...] packets [0, n1) with key 0, [n1, n2) with key 1, ...
 *
 * bench: protects one 12-byte-header + <payload_len> RTP packet over and over
 * (AES_CM_128_HMAC_SHA1_80, 6-byte MKI, sequence number bumped each time, one reused buffer)
 * for <seconds> of wall time, on <threads> threads (default 1) each with its own session, and
 * prints `packets_per_second=<total rate>`.
 */
#define _POSIX_C_SOURCE 200809L

#include <srtp2/srtp.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KEYS SRTP_MAX_NUM_MASTER_KEYS
#define MAX_PACKET 65536
/* Room libsrtp may write after the packet: trailer, plus the SRTCP E || index word. */
#define BUF_LEN (MAX_PACKET + SRTP_MAX_TRAILER_LEN + 4 + 64)
#define MAX_SWITCHES 64

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("libsrtp-harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void check(srtp_err_status_t st, const char *what)
{
    if (st != srtp_err_status_ok) {
        die("%s failed: libsrtp error %d", what, (int)st);
    }
}

/* ---- key file ---------------------------------------------------------------------------- */

struct keyfile {
    int tag_len;
    unsigned long window;
    unsigned n;
    unsigned char master[MAX_KEYS][SRTP_AES_ICM_128_KEY_LEN_WSALT]; /* key || salt */
    unsigned char mki[MAX_KEYS][SRTP_MAX_MKI_LEN];
    srtp_master_key_t keys[MAX_KEYS];
    srtp_master_key_t *key_ptrs[MAX_KEYS];
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex `s` into out[0..max); returns the byte count, or -1 on bad hex or overflow. */
static int parse_hex(const char *s, unsigned char *out, size_t max)
{
    size_t len = strlen(s);
    if (len % 2 != 0 || len / 2 > max) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (int)(len / 2);
}

static unsigned long parse_ulong(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') die("bad %s: '%s'", what, s);
    return v;
}

static void read_keyfile(const char *path, struct keyfile *kf)
{
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open key file %s: %s", path, strerror(errno));
    memset(kf, 0, sizeof *kf);
    kf->tag_len = 10;
    kf->window = 1024;
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL;
        char *tok = strtok_r(line, " \t\r\n", &save);
        if (!tok || tok[0] == '#') continue;
        if (strcmp(tok, "tag") == 0) {
            char *v = strtok_r(NULL, " \t\r\n", &save);
            if (!v) die("%s:%d: tag needs a value", path, lineno);
            kf->tag_len = (int)parse_ulong(v, "tag length");
            if (kf->tag_len != 10 && kf->tag_len != 4) die("%s:%d: tag must be 10 or 4", path, lineno);
        } else if (strcmp(tok, "window") == 0) {
            char *v = strtok_r(NULL, " \t\r\n", &save);
            if (!v) die("%s:%d: window needs a value", path, lineno);
            kf->window = parse_ulong(v, "window size");
        } else if (strcmp(tok, "key") == 0) {
            if (kf->n >= MAX_KEYS) die("%s:%d: more than %d keys", path, lineno, MAX_KEYS);
            unsigned i = kf->n;
            int have_key = 0, have_salt = 0, have_mki = 0;
            const char *name = tok;
            char *v = strtok_r(NULL, " \t\r\n", &save);
            for (;;) {
                if (!v) die("%s:%d: '%s' needs a value", path, lineno, name);
                if (strcmp(name, "key") == 0) {
                    if (parse_hex(v, kf->master[i], SRTP_AES_128_KEY_LEN) != SRTP_AES_128_KEY_LEN)
                        die("%s:%d: key must be 32 hex digits", path, lineno);
                    have_key = 1;
                } else if (strcmp(name, "salt") == 0) {
                    if (parse_hex(v, kf->master[i] + SRTP_AES_128_KEY_LEN, SRTP_SALT_LEN) != SRTP_SALT_LEN)
                        die("%s:%d: salt must be 28 hex digits", path, lineno);
                    have_salt = 1;
                } else if (strcmp(name, "mki") == 0) {
                    int m = parse_hex(v, kf->mki[i], SRTP_MAX_MKI_LEN);
                    if (m <= 0) die("%s:%d: mki must be 1..128 bytes of hex", path, lineno);
                    kf->keys[i].mki_size = (unsigned)m;
                    have_mki = 1;
                } else {
                    die("%s:%d: unknown field '%s'", path, lineno, name);
                }
                name = strtok_r(NULL, " \t\r\n", &save);
                if (!name) break;
                v = strtok_r(NULL, " \t\r\n", &save);
            }
            if (!have_key || !have_salt || !have_mki) die("%s:%d: key line needs key, salt and mki", path, lineno);
            kf->keys[i].key = kf->master[i];
            kf->keys[i].mki_id = kf->mki[i];
            kf->key_ptrs[i] = &kf->keys[i];
            kf->n++;
        } else {
            die("%s:%d: unknown directive '%s'", path, lineno, tok);
        }
    }
    if (ferror(f)) die("reading %s failed", path);
    fclose(f);
    if (kf->n == 0) die("%s: no key lines", path);
}

/* One session for every SSRC (key sharing through the ssrc_any_* wildcard), all master keys. */
static srtp_t make_session(struct keyfile *kf, int inbound)
{
    srtp_policy_t p;
    memset(&p, 0, sizeof p);
    if (kf->tag_len == 4) {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
    } else {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
    }
    /* SRTCP keeps the 80-bit tag (libsrtp's advice for _32, and our SrtpPolicy's choice). */
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.ssrc.value = 0;
    p.key = NULL; /* NULL: use keys[] (srtp_master_key_t.key points at key || salt) */
    p.keys = kf->key_ptrs;
    p.num_master_keys = kf->n;
    p.window_size = kf->window;
    p.allow_repeat_tx = 0;
    p.next = NULL;
    srtp_t ctx = NULL;
    check(srtp_create(&ctx, &p), "srtp_create");
    return ctx;
}

/* ---- packet files ------------------------------------------------------------------------ */

/* Reads one record into buf; returns its length, or -1 at a clean end of file. */
static long read_record(FILE *f, const char *path, unsigned char *buf)
{
    unsigned char hdr[4];
    size_t got = fread(hdr, 1, 4, f);
    if (got == 0 && feof(f)) return -1;
    if (got != 4) die("%s: truncated record header", path);
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len > MAX_PACKET) die("%s: record of %u bytes is longer than %d", path, len, MAX_PACKET);
    if (len > 0 && fread(buf, 1, len, f) != len) die("%s: truncated record", path);
    return (long)len;
}

static void write_record(FILE *f, const char *path, const unsigned char *buf, int len)
{
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                            (unsigned char)len};
    if (fwrite(hdr, 1, 4, f) != 4 || (len > 0 && fwrite(buf, 1, (size_t)len, f) != (size_t)len))
        die("writing %s failed: %s", path, strerror(errno));
}

static int is_rtcp(const unsigned char *buf, long len)
{
    return len >= 2 && buf[1] >= 192 && buf[1] <= 223;
}

static FILE *open_or_die(const char *path, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    return f;
}

static void close_or_die(FILE *f, const char *path)
{
    if (fclose(f) != 0) die("closing %s failed: %s", path, strerror(errno));
}

struct tally {
    unsigned long ok, fail;
    int first_error;
    long first_error_index;
};

static void count(struct tally *t, long index, srtp_err_status_t st)
{
    if (st == srtp_err_status_ok) {
        t->ok++;
        return;
    }
    t->fail++;
    if (t->first_error == 0) {
        t->first_error = (int)st;
        t->first_error_index = index;
    }
    fprintf(stderr, "fail index=%ld error=%d\n", index, (int)st);
}

static void print_tally(const struct tally *t)
{
    printf("ok=%lu fail=%lu first_error=%d first_error_index=%ld\n", t->ok, t->fail, t->first_error,
           t->first_error_index);
}

static int cmd_unprotect(const char *keypath, const char *inpath, const char *outpath)
{
    static struct keyfile kf;
    static unsigned char buf[BUF_LEN];
    read_keyfile(keypath, &kf);
    srtp_t ctx = make_session(&kf, 1);
    FILE *in = open_or_die(inpath, "rb"), *out = open_or_die(outpath, "wb");
    struct tally t = {0, 0, 0, -1};
    long n, index = 0;
    while ((n = read_record(in, inpath, buf)) >= 0) {
        int len = (int)n;
        srtp_err_status_t st = is_rtcp(buf, n) ? srtp_unprotect_rtcp_mki(ctx, buf, &len, 1)
                                               : srtp_unprotect_mki(ctx, buf, &len, 1);
        count(&t, index, st);
        write_record(out, outpath, buf, st == srtp_err_status_ok ? len : 0);
        index++;
    }
    fclose(in);
    close_or_die(out, outpath);
    check(srtp_dealloc(ctx), "srtp_dealloc");
    print_tally(&t);
    return 0;
}

static unsigned parse_schedule(const char *s, unsigned long *switches, unsigned *fixed)
{
    const char *prefix = "switch-at=";
    if (strncmp(s, prefix, strlen(prefix)) != 0) {
        *fixed = (unsigned)parse_ulong(s, "schedule (want <k> or switch-at=<n>[,<n>...])");
        return 0;
    }
    *fixed = 0;
    unsigned count = 0;
    char copy[1024];
    if (strlen(s) >= sizeof copy) die("schedule too long");
    strcpy(copy, s + strlen(prefix));
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (count >= MAX_SWITCHES) die("more than %d switches", MAX_SWITCHES);
        switches[count] = parse_ulong(tok, "switch point");
        if (count > 0 && switches[count] < switches[count - 1]) die("switch points must not decrease");
        count++;
    }
    if (count == 0) die("switch-at= needs at least one packet number");
    return count;
}

static int cmd_protect(const char *keypath, const char *schedule, const char *inpath, const char *outpath)
{
    static struct keyfile kf;
    static unsigned char buf[BUF_LEN];
    unsigned long switches[MAX_SWITCHES];
    unsigned fixed;
    read_keyfile(keypath, &kf);
    unsigned nswitch = parse_schedule(schedule, switches, &fixed);
    unsigned last_key = nswitch > 0 ? nswitch : fixed;
    if (last_key >= kf.n) die("schedule uses key %u, the key file has %u", last_key, kf.n);
    srtp_t ctx = make_session(&kf, 0);
    FILE *in = open_or_die(inpath, "rb"), *out = open_or_die(outpath, "wb");
    struct tally t = {0, 0, 0, -1};
    long n, index = 0;
    while ((n = read_record(in, inpath, buf)) >= 0) {
        unsigned key = fixed;
        while (key < nswitch && (unsigned long)index >= switches[key]) key++;
        int len = (int)n;
        srtp_err_status_t st = is_rtcp(buf, n) ? srtp_protect_rtcp_mki(ctx, buf, &len, 1, key)
                                               : srtp_protect_mki(ctx, buf, &len, 1, key);
        count(&t, index, st);
        write_record(out, outpath, buf, st == srtp_err_status_ok ? len : 0);
        index++;
    }
    fclose(in);
    close_or_die(out, outpath);
    check(srtp_dealloc(ctx), "srtp_dealloc");
    print_tally(&t);
    return 0;
}

/* ---- bench ------------------------------------------------------------------------------- */

struct bench_job {
    int id;
    double seconds;
    int payload_len;
    pthread_barrier_t *start;
    unsigned long long packets;
    double elapsed;
};

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *bench_thread(void *arg)
{
    struct bench_job *job = arg;
    struct keyfile kf; /* per thread: the session keeps pointers into it until srtp_create */
    memset(&kf, 0, sizeof kf);
    kf.tag_len = 10;
    kf.window = 1024;
    kf.n = 1;
    for (int i = 0; i < SRTP_AES_ICM_128_KEY_LEN_WSALT; i++) kf.master[0][i] = (unsigned char)(0x11 * i + job->id);
    static const unsigned char mki[6] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x03};
    memcpy(kf.mki[0], mki, sizeof mki);
    kf.keys[0] = (srtp_master_key_t){kf.master[0], kf.mki[0], sizeof mki};
    kf.key_ptrs[0] = &kf.keys[0];
    srtp_t ctx = make_session(&kf, 0);

    size_t plain_len = 12 + (size_t)job->payload_len;
    unsigned char *buf = calloc(1, plain_len + SRTP_MAX_TRAILER_LEN + 64);
    if (!buf) die("out of memory");
    uint32_t ssrc = 0x5eed0000u + (uint32_t)job->id;
    buf[0] = 0x80;
    buf[1] = 96;
    buf[4] = 0x12, buf[5] = 0x34, buf[6] = 0x56, buf[7] = 0x78;
    buf[8] = (unsigned char)(ssrc >> 24), buf[9] = (unsigned char)(ssrc >> 16);
    buf[10] = (unsigned char)(ssrc >> 8), buf[11] = (unsigned char)ssrc;
    for (size_t i = 12; i < plain_len; i++) buf[i] = (unsigned char)i;

    uint16_t seq = 0;
    unsigned long long packets = 0;
    int rc = pthread_barrier_wait(job->start);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die("pthread_barrier_wait: %d", rc);
    double start = now(), deadline = start + job->seconds, t = start;
    do {
        for (int k = 0; k < 256; k++) {
            seq++;
            buf[2] = (unsigned char)(seq >> 8);
            buf[3] = (unsigned char)seq;
            int len = (int)plain_len;
            srtp_err_status_t st = srtp_protect_mki(ctx, buf, &len, 1, 0);
            if (st != srtp_err_status_ok) die("srtp_protect_mki in bench: libsrtp error %d", (int)st);
        }
        packets += 256;
        t = now();
    } while (t < deadline);
    job->packets = packets;
    job->elapsed = t - start;
    free(buf);
    check(srtp_dealloc(ctx), "srtp_dealloc");
    return NULL;
}

static int cmd_bench(const char *secs, const char *payload, const char *threads_arg)
{
    double seconds = atof(secs);
    if (!(seconds > 0)) die("bad seconds: '%s'", secs);
    unsigned long payload_len = parse_ulong(payload, "payload length");
    if (payload_len > MAX_PACKET - 12) die("payload too long");
    unsigned long threads = threads_arg ? parse_ulong(threads_arg, "thread count") : 1;
    if (threads < 1 || threads > 256) die("thread count must be 1..256");

    pthread_barrier_t start;
    if (pthread_barrier_init(&start, NULL, (unsigned)threads) != 0) die("pthread_barrier_init failed");
    struct bench_job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (!jobs || !tids) die("out of memory");
    for (unsigned long i = 0; i < threads; i++) {
        jobs[i] = (struct bench_job){(int)i, seconds, (int)payload_len, &start, 0, 0};
        int rc = pthread_create(&tids[i], NULL, bench_thread, &jobs[i]);
        if (rc != 0) die("pthread_create: %s", strerror(rc));
    }
    double rate = 0;
    unsigned long long total = 0;
    for (unsigned long i = 0; i < threads; i++) {
        int rc = pthread_join(tids[i], NULL);
        if (rc != 0) die("pthread_join: %s", strerror(rc));
        rate += (double)jobs[i].packets / jobs[i].elapsed;
        total += jobs[i].packets;
    }
    pthread_barrier_destroy(&start);
    free(jobs);
    free(tids);
    printf("libsrtp=\"%s\" threads=%lu payload_len=%lu packets=%llu\n", srtp_get_version_string(), threads,
           payload_len, total);
    printf("packets_per_second=%.0f\n", rate);
    return 0;
}

static void usage(void)
{
    fputs("usage: libsrtp-harness unprotect <keyfile> <in> <out>\n"
          "       libsrtp-harness protect <keyfile> <k | switch-at=<n>[,<n>...]> <in> <out>\n"
          "       libsrtp-harness bench <seconds> <payload_len> [threads]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    check(srtp_init(), "srtp_init");
    int rc;
    if (strcmp(argv[1], "unprotect") == 0 && argc == 5) {
        rc = cmd_unprotect(argv[2], argv[3], argv[4]);
    } else if (strcmp(argv[1], "protect") == 0 && argc == 6) {
        rc = cmd_protect(argv[2], argv[3], argv[4], argv[5]);
    } else if (strcmp(argv[1], "bench") == 0 && (argc == 4 || argc == 5)) {
        rc = cmd_bench(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    } else {
        usage();
        return 2;
    }
    check(srtp_shutdown(), "srtp_shutdown");
    if (fflush(stdout) != 0) die("writing stdout failed");
    return rc;
}
