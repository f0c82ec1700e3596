import { randomBytes } from 'node:crypto';

/** Side effects every service uses, injectable so that tests control them. */
export interface Clock { now(): number }
export interface Ids { next(): string }

export const systemClock: Clock = { now: () => Date.now() };

/** UUID version 7: time-ordered, so ids sort like their creation time (RFC 9562). */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uuidIds(clock: Clock): Ids {
  return { next: () => uuidv7(clock.now()) };
}
