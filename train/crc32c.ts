// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's masked CRC, for TensorBoard event files.

const POLY = 0x82f63b78;

/** 256-entry table of the reflected CRC-32C polynomial. */
const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `bytes` (check value: crc32c("123456789") = 0xE3069283). Pass `crc` to continue a running CRC. */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** TFRecord's masked CRC: `((c >>> 15) | (c << 17)) + 0xA282EAD8 mod 2^32`, with c = crc32c(bytes). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}
