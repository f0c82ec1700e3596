import { type Action, type ActionType, type Device, IN_FORCE_STATUSES, isStatusIn } from '@quell/contracts';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/api-client.ts';
import { ACTIONS_KEY } from '../action-center/use-actions.ts';

/**
 * A state the device's own actions put it in (isolated, restricted, a user
 * contained): on while the latest completed action of that type has no undo.
 * Until the device API carries these states it is derived from History.
 */
export interface AppliedState {
  /** The completed action that put the state in place, or null when it is not in place. */
  action: Action | null;
  /** True when an undo of it was asked for and is on its way. */
  releasing: boolean;
}

function applied(actions: Action[] | undefined): AppliedState {
  const action = actions?.[0] ?? null;
  return { action, releasing: action?.undoneBy != null };
}

function useCompleted(deviceId: string, type: ActionType, limit: number) {
  return useQuery({
    queryKey: [ACTIONS_KEY, 'device-state', deviceId, type],
    queryFn: () => api.listActions({ view: 'history', deviceId, type, status: 'completed', limit }),
    refetchInterval: 10_000,
  });
}

export function useDeviceState(device: Device) {
  const isolation = useCompleted(device.id, 'isolate_device', 1);
  const restriction = useCompleted(device.id, 'restrict_code_execution', 1);
  const users = useCompleted(device.id, 'contain_user', 50);
  // Containment is desired state from the moment it is queued: agents enforce it before any of them reports.
  const containment = useQuery({
    queryKey: [ACTIONS_KEY, 'device-state', device.id, 'contain_device'],
    queryFn: () => api.listActions({ view: 'history', deviceId: device.id, type: 'contain_device', limit: 50 }),
    refetchInterval: 10_000,
    enabled: device.agent === null,
  });
  const notUndone = (items: Action[] | undefined): Action[] => (items ?? []).filter((a) => a.undoneBy === null);
  return {
    loading: isolation.isPending || restriction.isPending,
    isolation: applied(isolation.data?.items),
    restriction: applied(restriction.data?.items),
    /** Each user contained on this device and not released (one action per user name, the latest). */
    containedUsers: latestPerEntity(notUndone(users.data?.items)),
    /** Each address of this unmanaged device under containment (queued, being enforced or completed) and not released. */
    containments: latestPerEntity(notUndone(containment.data?.items).filter((a) => isStatusIn(IN_FORCE_STATUSES, a.status))),
  };
}

function latestPerEntity(actions: Action[]): Action[] {
  const seen = new Set<string>();
  return actions.filter((a) => (seen.has(a.entity.name) ? false : (seen.add(a.entity.name), true)));
}
