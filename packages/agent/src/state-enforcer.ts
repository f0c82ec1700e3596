import type { KeyObject } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import type { IndicatorHit } from '@quell/contracts';
import { loadState, saveState } from './desired-state.ts';
import { type DnsFilter, type DnsLists, cachedResolvers, lookupAddresses, startDnsFilter } from './dns-filter.ts';
import { type AgentContext, localCommand } from './agent-context.ts';
import { applyAddressBlocks, blockResolvedAddresses, unblockResolvedAddress } from './executors/address-blocks.linux.ts';
import { type ContainmentOutcome, applyContainment } from './executors/containment.linux.ts';
import { reapplyIsolation } from './executors/isolation.linux.ts';
import { restrictCodeExecution } from './executors/restrict-code.linux.ts';
import { type HitReporter, socketOwner, watchAddressHits } from './indicator-hits.ts';
import { Refusal, verifyState } from './protocol.ts';
import { createResolvedBlocks } from './resolved-blocks.ts';

/** The key in a state report's failures under which address blocks that could not be applied are reported (containment's are action ids). */
const ADDRESS_BLOCKS_FAILURE = 'address_blocks';
/** Likewise for domain and URL indicators the DNS filter could not enforce. */
const DNS_FAILURE = 'dns';
/** How often the agent's address table is read for hits, in milliseconds. */
const ADDRESS_HITS_CHECK_MS = 5000;

/** The hash lists of the state in force: what the antivirus and the exec guard act on. */
export interface HashLists {
  /** Block indicators' hashes (SHA-256, SHA-1, MD5). */
  blocked: ReadonlySet<string>;
  audited: ReadonlySet<string>;
  /** Blocked hashes whose indicators also remediate: a file refused at execution is quarantined too. */
  remediated: ReadonlySet<string>;
}

export interface StateEnforcerDeps extends AgentContext {
  serverKey: KeyObject;
  /** Indicators that matched here (addresses, names), reported signed. */
  hits: HitReporter;
  /** The hash lists changed (`grew`: a hash is in them that was not): what judged files against the old ones looks again. */
  onHashListsChanged(grew: boolean): void;
}

/**
 * The desired state the server signs for the fleet, enforced here:
 * containment, address and domain indicators (the firewall table and the
 * DNS filter), the hash lists the antivirus uses; kept for the next start,
 * and put back after a reboot with what the journal says is in force.
 */
export function createStateEnforcer(deps: StateEnforcerDeps) {
  const { runner, platform, log } = deps;
  /** Desired states are applied one after another, in the order they arrive. */
  let stateWork: Promise<void> = Promise.resolve();
  let lists: HashLists = { blocked: new Set(), audited: new Set(), remediated: new Set() };
  /** The address block and audit entries of the last desired state applied, to tell which one traffic matched. */
  let addressEntries: { block: readonly string[]; audit: readonly string[] } = { block: [], audit: [] };
  /** The domain entries of the last desired state applied, and the filter that enforces them while there are any. */
  let dnsLists: DnsLists = { block: new Set(), audit: new Set(), allow: new Set() };
  let dnsFilter: DnsFilter | null = null;
  /** What the address table lets through whatever blocks it holds: the server, and allowed addresses. */
  let keptAddresses: readonly string[] = [];
  /** The containment actions this agent enforces now (from the last state applied), for the drift watch. */
  let containedHere: string[] = [];
  /** Whether address block indicators are in force in the agent's table (drift keeps them so). */
  let blockingHere = false;
  /** Whether a state (or its repair) is being applied now, and how many have been: what the drift watch judges the tables by. */
  let applying = false;
  let applied = 0;
  const resolvers = cachedResolvers();
  const resolvedBlocks = createResolvedBlocks({
    lookup: async (name) => lookupAddresses(name, await resolvers()),
    spared: async () => [...(await resolvers()), ...ownAddresses()],
    block: (addresses) => blockResolvedAddresses(runner, addresses),
    unblock: (address) => unblockResolvedAddress(runner, address),
    onProblem: (problem) => log.warn('could not block the addresses of a blocked name', { error: problem }),
  });
  const addressHits = platform === 'linux' ? watchAddressHits({
    runner, intervalMs: ADDRESS_HITS_CHECK_MS, entries: () => addressEntries, resolved: resolvedBlocks.current, onHit: (hit) => deps.hits.add(hit),
    onError: (error) => log.warn('could not read the address indicators\' hits', { error: error.message }),
  }) : null;

  /** Enforces a signed state and keeps it for the next start; refuses one older than a state already applied. */
  async function apply(jws: string): Promise<{ version: number; outcome: ContainmentOutcome }> {
    const state = verifyState(jws, deps.serverKey);
    const stored = loadState(deps.agentDir);
    if (stored && state.version < stored.version) throw new Refusal(null, `state version ${state.version} is older than version ${stored.version} already applied`);
    const outcome: ContainmentOutcome = platform === 'linux'
      ? await applyContainment(runner, state.containment, { own: ownAddresses(), server: deps.serverAddresses })
      : { failures: Object.fromEntries(state.containment.map((e) => [e.actionId, `containment is not supported on ${platform} by this agent yet`])) };
    // Address and domain indicators: a failure is reported beside containment's, never in its place.
    const dns = state.dns ?? { block: [], audit: [], allow: [] };
    dnsLists = { block: new Set(dns.block), audit: new Set(dns.audit), allow: new Set(dns.allow) };
    const filtering = dns.block.length + dns.audit.length > 0;
    const dnsProblem = filtering ? await startFilteringDns() : null;
    if (dnsProblem !== null) outcome.failures[DNS_FAILURE] = dnsProblem;
    const addresses = { block: state.network?.blockAddresses ?? [], audit: state.network?.auditAddresses ?? [], redirectDns: filtering && dnsFilter !== null };
    const inTable = addresses.block.length + addresses.audit.length + (addresses.redirectDns ? 1 : 0);
    keptAddresses = [...deps.serverAddresses, ...(state.network?.allowAddresses ?? [])];
    // What matched since the last look is read before the table (and its counters) is replaced.
    await addressHits?.readNow();
    const blocking = platform === 'linux' ? await applyAddressBlocks(runner, addresses, keptAddresses)
      : inTable > 0 ? `address indicators are not supported on ${platform} by this agent yet` : null;
    if (blocking !== null) outcome.failures[ADDRESS_BLOCKS_FAILURE] = blocking;
    blockingHere = inTable > 0 && blocking === null;
    addressEntries = blocking === null ? addresses : { block: [], audit: [] };
    // Replacing the table emptied the sets of what blocked names resolve to.
    if (platform === 'linux') void resolvedBlocks.reapplied(blocking === null && addresses.redirectDns ? dnsLists.block : new Set());
    // Stopped only once nothing is redirected to it any more.
    if (!filtering) await stopFilteringDns();
    saveState(deps.agentDir, { version: state.version, jws });
    containedHere = state.containment.map((e) => e.actionId).filter((id) => outcome.error === undefined && !(id in outcome.failures));
    const blocked = new Set([...state.antivirus.blockSha256, ...(state.antivirus.blockSha1 ?? []), ...(state.antivirus.blockMd5 ?? [])]);
    const audited = new Set(state.antivirus.audit ?? []);
    const grew = [...blocked].some((hash) => !lists.blocked.has(hash)) || [...audited].some((hash) => !lists.audited.has(hash));
    const changed = grew || blocked.size !== lists.blocked.size;
    lists = { blocked, audited, remediated: new Set(state.antivirus.remediate ?? []) };
    if (changed) deps.onHashListsChanged(grew);
    return { version: state.version, outcome };
  }

  /** Starts the DNS filter if it is not running; why it could not, or null. */
  async function startFilteringDns(): Promise<string | null> {
    if (platform !== 'linux') return `domain and URL indicators are not supported on ${platform} by this agent yet`;
    if (dnsFilter !== null) return null;
    if ((await resolvers()).length === 0) return 'the DNS filter has no resolver to forward to: /etc/resolv.conf names none that is not on loopback';
    try {
      dnsFilter = await startDnsFilter({ lists: () => dnsLists, onHit: onDnsHit, onForwarded: (addresses) => resolvedBlocks.answeredForOthers(addresses), resolvers });
      log.info('DNS filter started');
      return null;
    } catch (error) {
      return (error as Error).message;
    }
  }

  async function stopFilteringDns(): Promise<void> {
    await dnsFilter?.close();
    if (dnsFilter) log.info('DNS filter stopped');
    dnsFilter = null;
  }

  /** A name that matched a domain entry: reported with the process that asked, where it still has its socket. */
  function onDnsHit(hit: IndicatorHit, client: { protocol: 'udp' | 'tcp'; port: number }): void {
    if (hit.action === 'block' && hit.name !== undefined) void resolvedBlocks.resolve(hit.name);
    void socketOwner(runner, [client.protocol === 'udp' ? '-Huanp' : '-Htanp', 'sport', '=', `:${client.port}`]).then((owner) => deps.hits.add({ ...hit, ...owner }));
  }

  /** Runs `work` once every state application before it has ended: states and their repairs are applied one at a time, in order. */
  function inOrder(work: () => Promise<void>): Promise<void> {
    const run = stateWork.then(async () => {
      applying = true;
      try {
        await work();
      } finally {
        applying = false;
        applied++;
      }
    });
    stateWork = run.catch(() => {});
    return run;
  }

  /** Restricting again is idempotent (restricted places are left alone); undo still restores from the original action's snapshot. */
  async function restrictAgain(actionId: string): Promise<string> {
    const result = await restrictCodeExecution({
      command: localCommand(deps.deviceId, { actionId, type: 'restrict_code_execution', entity: { name: 'device' }, parameters: {}, nonce: 'desired-state' }),
      runner, agentDir: deps.agentDir, serverAddresses: deps.serverAddresses, priorSnapshot: undefined, upload: async () => {},
    });
    return result.output;
  }

  return {
    apply,
    inOrder,
    restrictAgain,
    lists: (): HashLists => lists,
    containedHere: (): string[] => containedHere,
    blockingHere: (): boolean => blockingHere,
    /** The version of the state in force (0 before the first). */
    stateVersion: (): number => loadState(deps.agentDir)?.version ?? 0,
    /** How many states (and repairs) have been applied, or null while one is: the tables it fills are changing. */
    applications: (): number | null => (applying ? null : applied),
    /** Applies the stored state again, in turn with the states that arrive (a repair never puts an older state over a newer one). */
    reapplyStored: (): Promise<void> => inOrder(async () => {
      const stored = loadState(deps.agentDir);
      if (stored) await apply(stored.jws);
    }),

    /** State that must hold on this device whatever happened while the agent was down (a reboot empties the firewall). */
    async restore(): Promise<void> {
      if (platform !== 'linux') return;
      const stored = loadState(deps.agentDir);
      if (stored) {
        try {
          const applied = await apply(stored.jws);
          log.info('containment state re-applied', { version: applied.version, failures: applied.outcome.failures, error: applied.outcome.error });
        } catch (error) {
          log.warn('could not re-apply the containment state', { error: (error as Error).message });
        }
      }
      const isolation = deps.journal.inForce('isolate_device', 'release_isolation');
      if (isolation) {
        try {
          if (await reapplyIsolation(runner, isolation.snapshot)) log.warn('isolation was missing and has been re-applied', { actionId: isolation.actionId });
        } catch (error) {
          log.warn('could not re-apply isolation', { actionId: isolation.actionId, error: (error as Error).message });
        }
      }
      // Mount options do not survive a reboot either. Restricting again is idempotent (restricted places are
      // left alone), and undo still restores from the snapshot the original action took.
      const restriction = deps.journal.inForce('restrict_code_execution', 'remove_code_restriction');
      if (restriction) {
        try {
          log.info('code restriction re-applied', { actionId: restriction.actionId, output: await restrictAgain(restriction.actionId) });
        } catch (error) {
          log.warn('could not re-apply the code restriction', { actionId: restriction.actionId, error: (error as Error).message });
        }
      }
    },

    /** Stops the DNS filter and the reading of hits; `removeRedirect` first takes the endpoint's DNS back from the filter. */
    async stop(options: { removeRedirect: boolean }): Promise<void> {
      addressHits?.close();
      // The endpoint's DNS must not be sent to a filter that is gone: the redirect goes first.
      if (options.removeRedirect && dnsFilter) {
        await inOrder(async () => {
          const failed = await applyAddressBlocks(runner, { ...addressEntries, redirectDns: false }, keptAddresses);
          if (failed) log.warn('could not remove the DNS redirect', { error: failed });
        });
      }
      await stateWork;
      await stopFilteringDns();
    },
  };
}

/** This device's own addresses (IP and MAC), which it never contains. */
function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => !i.internal).flatMap((i) => [i.address.replace(/%.*$/, ''), i.mac]));
}
