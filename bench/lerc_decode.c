/* Esri's LERC library (liblerc, C API) timed on a folder of raw LERC
 * chunks: the C++ half of bench/lerc_vs_cpp.py, whose Rust half is
 * bench/decode-harness/src/bin/lerc_blobs.rs, on the same folder and the same format:
 *
 *   DIR/manifest.tsv   one line per file: name outer width rows samples dtype tiles
 *   DIR/name/i.bin     the chunks as stored in the TIFF (outer DEFLATE/ZSTD included)
 *
 * Per chunk it does what GDAL's libtiff LERC codec (tif_lerc.c) does: undo
 * the outer compression (zlib inflate for 1, ZSTD for 2), lerc_getBlobInfo,
 * then lerc_decode into the native sample type with the validity mask.
 * Output per file: name pixels_per_pass passes seconds mpx_per_s, then the
 * same for the outer decompression alone (name+":outer"), when there is one.
 *
 *   gcc -O2 -o lerc_decode bench/lerc_decode.c -lLerc -lz -lzstd
 *   ./lerc_decode DIR MIN_SECONDS
 */
#include <Lerc_c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? n : 1);
    if (fread(b, 1, n, f) != (size_t)n) { perror(path); exit(1); }
    fclose(f);
    *len = n;
    return b;
}

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "int8") || !strcmp(d, "uint8")) return 1;
    if (!strcmp(d, "int16") || !strcmp(d, "uint16")) return 2;
    if (!strcmp(d, "int32") || !strcmp(d, "uint32") || !strcmp(d, "float32")) return 4;
    return 8;
}

struct set {
    int outer, tiles;
    size_t raw;                 /* bytes of one decoded chunk */
    unsigned char **chunk;
    size_t *len;
    unsigned char *scratch;     /* the inflated blob */
    size_t scratch_cap;
    unsigned char *out, *mask;  /* decoded samples, validity bytes */
};

/* Undoes the outer compression of chunk i: the LERC blob and its size. */
static const unsigned char *inner(struct set *s, int i, size_t *n) {
    if (s->outer == 0) { *n = s->len[i]; return s->chunk[i]; }
    if (s->outer == 1) {
        uLongf got = s->scratch_cap;
        if (uncompress(s->scratch, &got, s->chunk[i], s->len[i]) != Z_OK) { fprintf(stderr, "inflate failed\n"); exit(1); }
        *n = got;
        return s->scratch;
    }
    size_t got = ZSTD_decompress(s->scratch, s->scratch_cap, s->chunk[i], s->len[i]);
    if (ZSTD_isError(got)) { fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(got)); exit(1); }
    *n = got;
    return s->scratch;
}

static void decode_pass(struct set *s) {
    for (int i = 0; i < s->tiles; i++) {
        size_t n;
        const unsigned char *blob = inner(s, i, &n);
        unsigned int info[11] = {0};
        double range[3];
        if (lerc_getBlobInfo(blob, (unsigned)n, info, range, 11, 3) != 0) { fprintf(stderr, "lerc_getBlobInfo failed\n"); exit(1); }
        /* info: version, dataType, nDepth, nCols, nRows, nBands, nValidPixels, blobSize, nMasks */
        int masks = info[8] > 0 ? 1 : 0;
        if (lerc_decode(blob, (unsigned)n, masks, masks ? s->mask : NULL, (int)info[2], (int)info[3],
                        (int)info[4], (int)info[5], info[1], s->out) != 0) {
            fprintf(stderr, "lerc_decode failed\n");
            exit(1);
        }
    }
}

static void outer_pass(struct set *s) {
    for (int i = 0; i < s->tiles; i++) { size_t n; inner(s, i, &n); }
}

static void timed(const char *name, const char *suffix, struct set *s, long px, double min_s,
                  void (*pass)(struct set *)) {
    pass(s); /* warm-up */
    long passes = 0;
    double t0 = now(), t;
    do { pass(s); passes++; t = now() - t0; } while (t < min_s);
    printf("%s%s %ld %ld %.6f %.3f\n", name, suffix, px, passes, t, (double)px * passes / t / 1e6);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR [MIN_SECONDS]\n", argv[0]); return 2; }
    double min_s = argc > 2 ? atof(argv[2]) : 0.5;
    char path[4096], name[256], dtype[32];
    snprintf(path, sizeof path, "%s/manifest.tsv", argv[1]);
    FILE *m = fopen(path, "r");
    if (!m) { perror(path); return 1; }
    int outer, width, rows, samples, tiles;
    while (fscanf(m, "%255s %d %d %d %d %31s %d", name, &outer, &width, &rows, &samples, dtype, &tiles) == 7) {
        struct set s = {0};
        s.outer = outer;
        s.tiles = tiles;
        s.raw = (size_t)width * rows * samples * dtype_size(dtype);
        s.chunk = calloc(tiles, sizeof *s.chunk);
        s.len = calloc(tiles, sizeof *s.len);
        for (int i = 0; i < tiles; i++) {
            snprintf(path, sizeof path, "%s/%s/%d.bin", argv[1], name, i);
            s.chunk[i] = slurp(path, &s.len[i]);
        }
        s.scratch_cap = s.raw * 2 + 65536;
        s.scratch = malloc(s.scratch_cap);
        s.out = malloc(s.raw);
        s.mask = malloc((size_t)width * rows);
        long px = (long)width * rows * tiles;
        timed(name, "", &s, px, min_s, decode_pass);
        if (outer) timed(name, ":outer", &s, px, min_s, outer_pass);
        for (int i = 0; i < tiles; i++) free(s.chunk[i]);
        free(s.chunk); free(s.len); free(s.scratch); free(s.out); free(s.mask);
    }
    fclose(m);
    return 0;
}
