import type { ExecutionContext } from './executors/executor.ts';

/**
 * The registry keys the Windows agent refuses to remove, in the same two
 * tiers as on Linux (guards.linux.ts): the agent's own keys never, the
 * system's critical keys unless a Global Administrator set
 * `parameters.overrideGuard: true` on the action.
 *
 * Removing a key removes everything under it, so a key is guarded when it is
 * a guarded key or lies above one: the Services root, which holds the agent's
 * service, is the agent's tier. Keys whose subkeys are the system's own data
 * (the account and security databases, the agent's keys) are guarded with
 * everything under them; keys where malware plants its persistence as
 * subkeys (a service under Services, a Winlogon notify package) are guarded
 * themselves only, so that those subkeys can still be removed.
 */
export interface Guards {
  /** Why this key (reg.exe's short form, e.g. `HKLM\SOFTWARE\Evil`) must not be removed, or null. */
  registryKey(key: string): string | null;
}

export interface GuardFacts {
  /** The name the agent's Windows service is installed under. */
  agentService: string;
  /** The key the agent keeps its own settings under. */
  agentKey: string;
}

export const WINDOWS_AGENT: GuardFacts = { agentService: 'quell-agent', agentKey: 'HKLM\\SOFTWARE\\Quell' };

interface KeyRule { key: string; what: string; harm: string; subtree: boolean }

export const SYSTEM_KEYS: readonly KeyRule[] = [
  { key: 'HKLM\\SAM', what: 'the local account database', harm: 'would lock everyone out', subtree: true },
  { key: 'HKLM\\SECURITY', what: 'the local security policy and its secrets', harm: 'could leave the device unable to log anyone in', subtree: true },
  { key: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa', what: 'the Local Security Authority\'s configuration', harm: 'could lock everyone out', subtree: false },
  { key: 'HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon', what: 'the logon configuration', harm: 'could lock everyone out', subtree: false },
];

/**
 * The form keys are compared in: upper case (the registry ignores case),
 * a numbered control set as CurrentControlSet, and the 32-bit view of
 * SOFTWARE as SOFTWARE itself.
 */
function comparable(key: string): string {
  return key.toUpperCase()
    .replace(/^HKLM\\SYSTEM\\CONTROLSET\d{3}(?=\\|$)/, 'HKLM\\SYSTEM\\CURRENTCONTROLSET')
    .replace(/^HKLM\\SOFTWARE\\WOW6432NODE(?=\\|$)/, 'HKLM\\SOFTWARE');
}

/** Whether removing `key` removes `guarded` (it is the key or above it), or, for a subtree rule, changes it (it is below). */
function touches(key: string, guarded: string, subtree: boolean): boolean {
  const k = comparable(key);
  const g = comparable(guarded);
  return k === g || g.startsWith(`${k}\\`) || (subtree && k.startsWith(`${g}\\`));
}

/** How a key is named in a reason: itself, and the guarded key it holds or lies inside when that is another. */
function subjectOf(key: string, guarded: string): string {
  if (comparable(key) === comparable(guarded)) return key;
  return comparable(guarded).startsWith(`${comparable(key)}\\`) ? `${key} (which holds ${guarded})` : `${key} (inside ${guarded})`;
}

/** The guards for one command: `parameters.overrideGuard === true` lifts the system tier, never the agent's own. */
export function guardsFor(ctx: ExecutionContext, facts: GuardFacts = WINDOWS_AGENT): Guards {
  const override = 'overrideGuard' in ctx.command.parameters && ctx.command.parameters.overrideGuard === true;
  const agentKeys = [facts.agentKey, `HKLM\\SYSTEM\\CurrentControlSet\\Services\\${facts.agentService}`];
  return {
    registryKey(key) {
      const own = agentKeys.find((guarded) => touches(key, guarded, true));
      if (own) {
        return `${subjectOf(key, own)} is guarded (the Quell agent's own key): removing it would lose this device to Quell. `
          + 'This is never done, not even with parameters.overrideGuard; to remove the agent, offboard the device (quell device offboard)';
      }
      const rule = SYSTEM_KEYS.find((candidate) => touches(key, candidate.key, candidate.subtree));
      if (!rule || override) return null;
      return `${subjectOf(key, rule.key)} is guarded (${rule.what}): removing it ${rule.harm}. A Global Administrator can override with parameters.overrideGuard`;
    },
  };
}
