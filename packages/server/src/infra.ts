import { randomBytes } from 'node:crypto';

/** Side effects every service uses, injectable so that tests control them. */
export interface Clock { now(): number }
export interface Ids { next(): string }

export const systemClock: Clock = { now: () => Date.now() };

/**
 * UUID version 7 (RFC 9562): a 48-bit millisecond time, then a 12-bit counter
 * that restarts at a random value each millisecond, then random bits. Ids
 * from one generator therefore sort in the order they were made, even within
 * one millisecond — keyset paging and timelines rely on that.
 */
export function uuidIds(clock: Clock): Ids {
  let lastMs = -1;
  let counter = 0;
  return {
    next() {
      let ms = clock.now();
      if (ms <= lastMs) {
        ms = lastMs;
        counter++;
        if (counter > 0xfff) {
          ms = ++lastMs;
          counter = 0;
        }
      } else {
        counter = randomBytes(2).readUInt16BE() & 0x7ff;
      }
      lastMs = ms;
      const bytes = randomBytes(16);
      bytes.writeUIntBE(ms, 0, 6);
      bytes.writeUInt16BE(0x7000 | counter, 6);
      bytes[8] = 0x80 | (bytes[8]! & 0x3f);
      const hex = bytes.toString('hex');
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    },
  };
}
