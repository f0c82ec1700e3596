import { checksum, isTime, isUuid } from './journal-format.ts';

/**
 * Commands are signed when they are queued, and several can be queued at
 * once (one operator's bulk approval, two operators, two server replicas),
 * so they can reach the agent slightly out of the order they were signed
 * in. A command signed up to this long before the newest one accepted is
 * still taken, provided it is not one of those already accepted.
 */
export const STALE_TOLERANCE_SECONDS = 300;
/** The most commands the watermark remembers within the tolerance; beyond that the oldest are forgotten. */
const RECENT_MAX = 2048;

/**
 * The highest issued-at (server time, seconds) of any command the agent
 * accepted, and the commands accepted within STALE_TOLERANCE_SECONDS before
 * it. Kept in a file of its own, so that it still holds when the journal is
 * lost or damaged: a command the journal does not know is refused when it
 * is older than the tolerance allows, or when it was accepted before.
 */
export class Watermark {
  iat: number | null = null;
  /** Action id → issued-at, in the order accepted. */
  private readonly recent = new Map<string, number>();

  accept(actionId: string, iat: number): void {
    this.raise(iat);
    if (iat >= this.iat! - STALE_TOLERANCE_SECONDS) this.recent.set(actionId, iat);
    this.forget();
  }

  private raise(iat: number): void {
    if (this.iat === null || iat > this.iat) this.iat = iat;
  }

  /** Commands older than the tolerance need no entry: their issued-at refuses them. */
  private forget(): void {
    for (const [id, iat] of this.recent) if (iat < this.iat! - STALE_TOLERANCE_SECONDS) this.recent.delete(id);
    for (const id of this.recent.keys()) {
      if (this.recent.size <= RECENT_MAX) break;
      this.recent.delete(id);
    }
  }

  copy(): Watermark {
    const copy = new Watermark();
    copy.iat = this.iat;
    for (const [id, iat] of this.recent) copy.recent.set(id, iat);
    return copy;
  }

  staleReason(actionId: string, iat: number): string | null {
    if (this.iat === null) return null;
    if (this.recent.has(actionId)) return 'this action was accepted before, but the journal has no record of it (damaged or lost); it is not run again';
    if (iat < this.iat - STALE_TOLERANCE_SECONDS) {
      return `issued before the last accepted command (at ${new Date(iat * 1000).toISOString()}, more than ${STALE_TOLERANCE_SECONDS} s before ${new Date(this.iat * 1000).toISOString()}); `
        + 'the journal has no record of it, so it may have run already and is not run';
    }
    return null;
  }

  /** The file's text: `{"iat":…,"recent":[[actionId, iat], …],"sum":"…"}`, the sum as in the journal, over the JSON before it. */
  serialize(): string {
    const body = { iat: this.iat, recent: [...this.recent] };
    return `${JSON.stringify({ ...body, sum: checksum(JSON.stringify(body)) })}\n`;
  }

  /** Merges a saved watermark in; returns why it cannot be trusted, or null. */
  merge(text: string): string | null {
    let saved: { iat?: unknown; recent?: unknown; sum?: unknown };
    try {
      saved = JSON.parse(text) as typeof saved;
    } catch {
      return 'not JSON';
    }
    if (typeof saved !== 'object' || saved === null) return 'not a watermark';
    if (saved.sum !== checksum(JSON.stringify({ iat: saved.iat, recent: saved.recent }))) return 'checksum does not match';
    const recent = saved.recent;
    const valid = (saved.iat === null || isTime(saved.iat)) && Array.isArray(recent) && recent.every((r) => Array.isArray(r) && isUuid(r[0]) && isTime(r[1]));
    if (!valid) return 'not a watermark';
    if (saved.iat !== null) this.raise(saved.iat as number);
    for (const [id, iat] of recent as Array<[string, number]>) this.accept(id, iat);
    return null;
  }
}
