import { type Action, type Device } from '@quell/contracts';
import { useQueries } from '@tanstack/react-query';
import { api } from '../api/api-client.ts';
import { ACTIONS_KEY } from '../action-center/use-actions.ts';

/** A state the device's own actions put it in (isolated, restricted). */
export interface AppliedState {
  /** The action that put the state in place, or null when it is not in place. */
  actionId: string | null;
  /** That action in full, once it has loaded. */
  action: Action | null;
  /** True when an undo of it was asked for and is on its way. */
  releasing: boolean;
}

/**
 * What is in force on the device, as the device API says (`device.state`),
 * with each action that put it there loaded in full: the page offers its
 * undo and says since when it holds.
 */
export function useDeviceState(device: Device) {
  const { state } = device;
  const ids = [state.isolatedBy, state.codeRestrictedBy, ...state.containedUsers.map((u) => u.actionId), ...state.containment.map((c) => c.actionId)]
    .filter((id): id is string => id !== null);
  const loaded = useQueries({
    queries: ids.map((id) => ({ queryKey: [ACTIONS_KEY, 'device-state', id], queryFn: async () => (await api.getAction(id)).action, refetchInterval: 10_000 })),
  });
  const byId = new Map(loaded.flatMap((query) => (query.data ? [[query.data.id, query.data] as const] : [])));
  const releasing = new Set(state.releasing);
  const applied = (id: string | null): AppliedState => ({ actionId: id, action: id === null ? null : byId.get(id) ?? null, releasing: id !== null && releasing.has(id) });
  const held = (actionIds: string[]): Action[] => actionIds.filter((id) => !releasing.has(id)).flatMap((id) => byId.get(id) ?? []);
  return {
    isolation: applied(state.isolatedBy),
    restriction: applied(state.codeRestrictedBy),
    /** Each user contained on this device whose release was not asked for. */
    containedUsers: held(state.containedUsers.map((u) => u.actionId)),
    /** Each address of this unmanaged device under containment (being enforced or enforced) and not released. */
    containments: held(state.containment.map((c) => c.actionId)),
  };
}
