import type { DeviceHealth } from '@quell/contracts';
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/api-client.ts';

export const HEALTH_LABELS: Record<DeviceHealth, string> = { online: 'Online', offline: 'Offline', unmanaged: 'Unmanaged' };
export const HEALTH_COLORS: Record<DeviceHealth, 'success' | 'danger' | 'informative'> = { online: 'success', offline: 'danger', unmanaged: 'informative' };

export const DEVICE_GROUPS_KEY = ['device-groups'] as const;

export function useDeviceGroups() {
  return useQuery({ queryKey: DEVICE_GROUPS_KEY, queryFn: api.listDeviceGroups, staleTime: 60_000 });
}
