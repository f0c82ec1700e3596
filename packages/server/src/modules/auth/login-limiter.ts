/**
 * Counts failed sign-ins per user name and per source address in a sliding
 * window. In memory: each replica limits on its own, which still caps a
 * guesser at (replicas × limit) tries per window.
 */
export function createLoginLimiter(options: { maxFailures: number; windowMs: number; now: () => number }) {
  const failures = new Map<string, number[]>();

  const recent = (key: string): number[] => {
    const since = options.now() - options.windowMs;
    const kept = (failures.get(key) ?? []).filter((t) => t > since);
    if (kept.length === 0) failures.delete(key);
    else failures.set(key, kept);
    return kept;
  };

  const keys = (username: string, ip: string | null): string[] => [`user:${username.toLowerCase()}`, `ip:${ip ?? 'unknown'}`];

  return {
    /** Seconds to wait before trying again, or 0 when a try is allowed. */
    retryAfter(username: string, ip: string | null): number {
      let wait = 0;
      for (const key of keys(username, ip)) {
        const times = recent(key);
        const limit = key.startsWith('ip:') ? options.maxFailures * 4 : options.maxFailures;
        if (times.length >= limit) wait = Math.max(wait, Math.ceil((times[0]! + options.windowMs - options.now()) / 1000));
      }
      return wait;
    },
    fail(username: string, ip: string | null): void {
      for (const key of keys(username, ip)) failures.set(key, [...recent(key), options.now()]);
    },
    succeed(username: string): void {
      failures.delete(`user:${username.toLowerCase()}`);
    },
  };
}
