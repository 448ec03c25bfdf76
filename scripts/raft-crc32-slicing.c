/* Appended to raft 0.22.1's src/byte.c by scripts/fetch-raft.sh, which renames
 * the library's own byteCrc32 to byteCrc32Bytewise first.
 *
 * Why: libraft checksums every entry it writes to its log with byteCrc32, one
 * table lookup per byte. With replicated shards carrying ~40 KB entries that
 * was 8-9% of all CPU in the RF 3 ingest benchmark (perf, docs/benchmarks.md).
 *
 * This computes the same CRC (the same polynomial, bit order and init, so
 * existing log segments stay readable) eight bytes per step ("slicing by 8"):
 * table k holds the CRC of a byte followed by k zero bytes. The tables are
 * built from byteCrcTable at load time and checked against the byte-wise
 * version there; a mismatch aborts rather than write logs no one can read. */
#include <stdint.h>
#include <stdlib.h>

static unsigned byteCrcSlices[8][256];

static void byteCrcBuildSlices(void) __attribute__((constructor));
static void byteCrcBuildSlices(void)
{
    unsigned i;
    unsigned k;
    for (i = 0; i < 256; i++) {
        byteCrcSlices[0][i] = byteCrcTable[i];
    }
    for (k = 1; k < 8; k++) {
        for (i = 0; i < 256; i++) {
            unsigned prev = byteCrcSlices[k - 1][i];
            byteCrcSlices[k][i] = (prev << 8) ^ byteCrcTable[(prev >> 24) & 255];
        }
    }
    {
        uint8_t probe[61];
        unsigned fast;
        for (i = 0; i < sizeof probe; i++) {
            probe[i] = (uint8_t)(i * 37 + 11);
        }
        for (i = 0; i < sizeof probe; i++) {
            fast = byteCrc32(probe + i, sizeof probe - i, 0x9e3779b9u * i);
            if (fast != byteCrc32Bytewise(probe + i, sizeof probe - i, 0x9e3779b9u * i)) {
                abort();
            }
        }
    }
}

unsigned byteCrc32(const void *buf, const size_t size, const unsigned init)
{
    unsigned crc = init;
    const uint8_t *p = (const uint8_t *)buf;
    size_t count = size;

    while (count >= 8) {
        crc ^= ((unsigned)p[0] << 24) | ((unsigned)p[1] << 16) | ((unsigned)p[2] << 8) | (unsigned)p[3];
        crc = byteCrcSlices[7][crc >> 24] ^ byteCrcSlices[6][(crc >> 16) & 255] ^
              byteCrcSlices[5][(crc >> 8) & 255] ^ byteCrcSlices[4][crc & 255] ^ byteCrcSlices[3][p[4]] ^
              byteCrcSlices[2][p[5]] ^ byteCrcSlices[1][p[6]] ^ byteCrcSlices[0][p[7]];
        p += 8;
        count -= 8;
    }
    while (count--) {
        crc = (crc << 8) ^ byteCrcTable[((crc >> 24) ^ *p) & 255];
        p++;
    }
    return crc;
}
