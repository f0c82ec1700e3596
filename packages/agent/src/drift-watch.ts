import type { EnforcedEffect } from '@quell/contracts';

/** What can tell the drift watch, by an event, that an effect in force may have been lifted. */
export interface DriftSignals {
  /** Files whose change (written, removed, renamed over) may lift it: a removed file, /etc/shadow for the accounts. */
  files?: readonly string[];
  /** Folders any change in which may lift it. */
  folders?: readonly string[];
  /** nftables rules: any change to the ruleset. */
  firewall?: boolean;
  /** Mount options: any change to the mount table. */
  mounts?: boolean;
  /** Network interfaces: one added, removed or changed (a bridge for containers). */
  links?: boolean;
}

/**
 * One effect the agent keeps true while it is in force: how to see whether
 * it holds, and how to put it back. An effect that is one whole (the
 * isolation tables) is one check; one kept per thing (each contained user,
 * each removed file) is one check per action, so that a drift is reported
 * on the action whose effect drifted and on no other.
 */
export interface EnforcedEffectCheck {
  effect: EnforcedEffect;
  /** The actions whose effect it is. */
  actionIds: string[];
  /** What is wrong with it now, in words, or null when it holds. */
  check(): Promise<string | null>;
  repair(): Promise<void>;
  /** The events that may mean it was lifted, for a check at once rather than at the next round. */
  signals?: DriftSignals;
}

/** What tells one check from the others: its effect and its actions. */
export const checkKey = (check: Pick<EnforcedEffectCheck, 'effect' | 'actionIds'>): string => `${check.effect}:${check.actionIds.join(',')}`;

export interface DriftReport { effect: EnforcedEffect; actionIds: string[]; found: string; repaired: boolean; error?: string; at: number }

export interface DriftWatch {
  /** Checks every effect now (after an action completes, say), or only those of `keys` (an event concerned them), instead of at the next tick. */
  checkNow(keys?: ReadonlySet<string>): Promise<void>;
  /**
   * Runs `change` (an action that puts an effect in force or takes it away)
   * after the check under way, with no check during it: a check that saw the
   * effect before an undo removed it must not put it back afterwards.
   */
  exclusive<T>(change: () => Promise<T>): Promise<T>;
  close(): void;
}

/**
 * Keeps what the agent enforces true while it runs: every `intervalMs`, and
 * whenever `checkNow` is called (an event said something changed), it
 * checks each effect in force (its nftables table, mount options…) and, when
 * something lifted it — a firewall reload, `nft flush ruleset`, a remount —
 * puts it back at once and reports what it found. Checks never overlap.
 * What it cannot put back is reported once, and again only when what it
 * finds or why it fails changes.
 */
export function watchDrift(options: {
  /** The checks of what is in force now: asked at each round, after any change under way. */
  effects: () => readonly EnforcedEffectCheck[];
  intervalMs: number;
  onDrift: (report: DriftReport) => void;
  onError: (effect: EnforcedEffect, error: Error) => void;
  /** After each round, with the checks of what was in force. */
  onRound?: (checks: readonly EnforcedEffectCheck[]) => void;
}): DriftWatch {
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  /** What each check's last failed repair found and why it failed: the same failure again is not reported again. */
  let unrepaired = new Map<string, string>();

  async function checkOne(effect: EnforcedEffectCheck, key: string): Promise<void> {
    const { actionIds } = effect;
    const found = await effect.check();
    if (found === null) {
      unrepaired.delete(key);
      return;
    }
    const at = Date.now();
    let error: string | null;
    try {
      await effect.repair();
      error = await effect.check();
    } catch (failure) {
      error = (failure as Error).message;
    }
    if (error === null) {
      unrepaired.delete(key);
      options.onDrift({ effect: effect.effect, actionIds, found, repaired: true, at });
      return;
    }
    const failure = `${found}\u0000${error}`;
    if (unrepaired.get(key) === failure) return;
    unrepaired.set(key, failure);
    options.onDrift({ effect: effect.effect, actionIds, found, repaired: false, error, at });
  }

  const checkAll = (only?: ReadonlySet<string>): Promise<void> => {
    running = running.then(async () => {
      const checks = options.effects();
      const keys = new Set(checks.map(checkKey));
      for (const effect of checks) {
        const key = checkKey(effect);
        if (only && !only.has(key)) continue;
        try {
          await checkOne(effect, key);
        } catch (error) {
          options.onError(effect.effect, error as Error);
        }
      }
      // What is no longer in force starts afresh if it comes back.
      unrepaired = new Map([...unrepaired].filter(([key]) => keys.has(key)));
      options.onRound?.(checks);
    });
    return running;
  };

  const tick = (): void => {
    timer = setTimeout(() => void checkAll().finally(() => {
      if (!closed) tick();
    }), options.intervalMs);
  };
  tick();

  return {
    checkNow: checkAll,
    exclusive(change) {
      const done = running.then(change);
      running = done.then(() => undefined, () => undefined);
      return done;
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
