/** The first wait after a connection drops or fails; it doubles with every failure after that. */
const FIRST_WAIT_MS = 1000;
const LONGEST_WAIT_MS = 30_000;
/** No reconnection follows another sooner than this, however the dice fall. */
const SHORTEST_WAIT_MS = 100;

export interface DialPlan {
  /** The address to dial now. */
  current(): string;
  /** The connection was welcomed: the waits start small again. */
  welcomed(): void;
  /** The connection failed or dropped: moves on to the next address and says how long to wait before dialing it. */
  failed(): number;
}

/**
 * Which of the server's addresses (its replicas) an agent dials, and when.
 * Each agent walks the list from a random starting point, so a fleet spreads
 * across the replicas, and moves on after every failure or drop, so the
 * agents of a replica that dies spread across the others. The wait before
 * each new attempt is drawn at random up to a bound that doubles with each
 * failure in a row ("full jitter"), so that thousands of agents cut off at
 * once do not all come back in the same instant, nor retry in step.
 */
export function createDialPlan(urls: readonly string[], random: () => number = Math.random): DialPlan {
  if (urls.length === 0) throw new Error('the agent knows no server address');
  let index = Math.floor(random() * urls.length);
  let failures = 0;
  return {
    current: () => urls[index]!,
    welcomed() {
      failures = 0;
    },
    failed() {
      index = (index + 1) % urls.length;
      const bound = Math.min(LONGEST_WAIT_MS, FIRST_WAIT_MS * 2 ** failures);
      failures = Math.min(failures + 1, 16);
      return Math.max(SHORTEST_WAIT_MS, Math.round(random() * bound));
    },
  };
}
