/**
 * Sign-in throttling that slows a guesser without locking the owner out
 * (OWASP ASVS 2.2.1). docs/throttling.md describes it for operators; keep the
 * two in step.
 *
 * - Per (user name, address) and per address: a few failures are free, then
 *   each further one doubles the wait before the next try from there.
 *   A success clears its (user name, address) pair only: an attacker cannot
 *   reset an address's count by signing in to an account of their own.
 * - Per user name, from every address together: after ACCOUNT_FAILURES_PER_HOUR
 *   failures within an hour, addresses the user has not signed in from before
 *   wait until the hour's count drops; the user's known addresses do not.
 *
 * So the right password from an address that has not been failing is
 * accepted, unless the account is under a spread-out attack and the address
 * is new for that user. A refused try is not checked, not counted and not
 * audited. In memory: each replica throttles on its own, and a restart
 * forgets both the failures and the known addresses.
 */
export const LOGIN_THROTTLE = {
  /** Failures free of delay per (user name, address). */
  pairFreeFailures: 5,
  /** Failures free of delay per address, over all user names (offices share one address). */
  addressFreeFailures: 20,
  /** The first delay; each further failure doubles it, up to maxDelayMs. */
  firstDelayMs: 1_000,
  maxDelayMs: 15 * 60_000,
  /** A pair or address with no failure for this long starts again from zero. */
  forgetAfterMs: 60 * 60_000,
  /** ASVS 2.2.1: at most this many failures per account and hour from addresses new to it. */
  accountFailuresPerHour: 100,
  /** How long an address stays known for a user after a successful sign-in. */
  knownAddressMs: 30 * 86_400_000,
  /** Entries kept per table before the least recently used go (bounds memory under a spray). */
  maxEntries: 100_000,
} as const;

const HOUR_MS = 60 * 60_000;

interface Streak { failures: number; last: number }

/** A Map that forgets its least recently touched entries past `max`. */
function boundedMap<V>(max: number) {
  const map = new Map<string, V>();
  return {
    get: (key: string): V | undefined => map.get(key),
    set(key: string, value: V): void {
      map.delete(key);
      map.set(key, value);
      if (map.size > max) map.delete(map.keys().next().value!);
    },
    delete: (key: string): boolean => map.delete(key),
  };
}

/** Milliseconds to wait after `failures` failures of which `free` cost nothing. */
export function delayAfter(failures: number, free: number): number {
  if (failures < free) return 0;
  const doublings = Math.min(failures - free, 30);
  return Math.min(LOGIN_THROTTLE.firstDelayMs * 2 ** doublings, LOGIN_THROTTLE.maxDelayMs);
}

export function createLoginLimiter(options: { now: () => number }) {
  const { now } = options;
  const streaks = boundedMap<Streak>(LOGIN_THROTTLE.maxEntries);
  /** Per user name: times of the failures within the last hour, oldest first. */
  const accountFailures = boundedMap<number[]>(LOGIN_THROTTLE.maxEntries);
  /** Per `user name|address`: when that user last signed in from there. */
  const known = boundedMap<number>(LOGIN_THROTTLE.maxEntries);

  const name = (username: string): string => username.toLowerCase();
  const pairKey = (username: string, address: string): string => `pair:${name(username)}|${address}`;
  const addressKey = (address: string): string => `address:${address}`;

  const streak = (key: string): Streak | null => {
    const found = streaks.get(key);
    if (found && now() - found.last > LOGIN_THROTTLE.forgetAfterMs) {
      streaks.delete(key);
      return null;
    }
    return found ?? null;
  };

  const waitFor = (key: string, free: number): number => {
    const found = streak(key);
    return found ? Math.max(0, found.last + delayAfter(found.failures, free) - now()) : 0;
  };

  const recentAccountFailures = (username: string): number[] => {
    const since = now() - HOUR_MS;
    return (accountFailures.get(name(username)) ?? []).filter((t) => t > since);
  };

  const isKnown = (username: string, address: string): boolean => {
    const at = known.get(`${name(username)}|${address}`);
    return at !== undefined && now() - at <= LOGIN_THROTTLE.knownAddressMs;
  };

  return {
    /** Whole seconds to wait before this try may be checked, or 0 when it may be checked now. */
    retryAfter(username: string, ip: string | null): number {
      const address = ip ?? 'unknown';
      let wait = Math.max(waitFor(pairKey(username, address), LOGIN_THROTTLE.pairFreeFailures), waitFor(addressKey(address), LOGIN_THROTTLE.addressFreeFailures));
      const account = recentAccountFailures(username);
      if (account.length >= LOGIN_THROTTLE.accountFailuresPerHour && !isKnown(username, address)) {
        // Until enough of the hour's failures have aged out to fall below the cap.
        wait = Math.max(wait, account[account.length - LOGIN_THROTTLE.accountFailuresPerHour]! + HOUR_MS - now());
      }
      return Math.ceil(wait / 1000);
    },

    fail(username: string, ip: string | null): void {
      const address = ip ?? 'unknown';
      for (const key of [pairKey(username, address), addressKey(address)]) streaks.set(key, { failures: (streak(key)?.failures ?? 0) + 1, last: now() });
      // Only the newest `cap` times matter for the cap, so the list never grows past it.
      accountFailures.set(name(username), [...recentAccountFailures(username), now()].slice(-LOGIN_THROTTLE.accountFailuresPerHour));
    },

    succeed(username: string, ip: string | null): void {
      const address = ip ?? 'unknown';
      streaks.delete(pairKey(username, address));
      known.set(`${name(username)}|${address}`, now());
    },
  };
}
