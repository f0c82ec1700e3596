import type { EnforcedEffect } from '@quell/contracts';

/** One effect the agent keeps true while it is in force: how to see whether it holds, and how to put it back. */
export interface EnforcedEffectCheck {
  effect: EnforcedEffect;
  /** The actions whose effect it is, while in force; none: nothing to check. */
  actionIds(): string[];
  /** What is wrong with it now, in words, or null when it holds. */
  check(): Promise<string | null>;
  repair(): Promise<void>;
}

export interface DriftReport { effect: EnforcedEffect; actionIds: string[]; found: string; repaired: boolean; error?: string; at: number }

export interface DriftWatch {
  /** Checks every effect now (after an action completes, say) instead of at the next tick. */
  checkNow(): Promise<void>;
  /**
   * Runs `change` (an action that puts an effect in force or takes it away)
   * after the check under way, with no check during it: a check that saw the
   * effect before an undo removed it must not put it back afterwards.
   */
  exclusive<T>(change: () => Promise<T>): Promise<T>;
  close(): void;
}

/**
 * Keeps what the agent enforces true while it runs: every `intervalMs` it
 * checks each effect in force (its nftables table, mount options…) and, when
 * something lifted it — a firewall reload, `nft flush ruleset`, a remount —
 * puts it back at once and reports what it found. Checks never overlap.
 */
export function watchDrift(options: {
  effects: readonly EnforcedEffectCheck[];
  intervalMs: number;
  onDrift: (report: DriftReport) => void;
  onError: (effect: EnforcedEffect, error: Error) => void;
}): DriftWatch {
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  async function checkOne(effect: EnforcedEffectCheck): Promise<void> {
    const actionIds = effect.actionIds();
    if (actionIds.length === 0) return;
    const found = await effect.check();
    if (found === null) return;
    const at = Date.now();
    try {
      await effect.repair();
      const still = await effect.check();
      options.onDrift({ effect: effect.effect, actionIds, found, repaired: still === null, ...(still === null ? {} : { error: still }), at });
    } catch (error) {
      options.onDrift({ effect: effect.effect, actionIds, found, repaired: false, error: (error as Error).message, at });
    }
  }

  const checkAll = (): Promise<void> => {
    running = running.then(async () => {
      for (const effect of options.effects) {
        try {
          await checkOne(effect);
        } catch (error) {
          options.onError(effect.effect, error as Error);
        }
      }
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
