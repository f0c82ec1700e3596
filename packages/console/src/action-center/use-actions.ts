import type { Action, ActionView } from '@quell/contracts';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { type BulkResult, api } from '../api/api-client.ts';
import { type ActionFilters, listQuery } from './action-filters.ts';

export const ACTIONS_KEY = 'actions';
export const ACTION_KEY = 'action';

export function useActionsPage(view: ActionView, filters: ActionFilters, cursor: string | undefined) {
  return useQuery({
    queryKey: [ACTIONS_KEY, view, filters, cursor ?? null],
    queryFn: () => api.listActions(listQuery(view, filters, cursor)),
    placeholderData: keepPreviousData,
  });
}

export function useActionDetail(id: string | null) {
  return useQuery({ queryKey: [ACTION_KEY, id], queryFn: () => api.getAction(id!), enabled: id !== null });
}

export function useInstances(action: Action | undefined, enabled: boolean) {
  return useQuery({ queryKey: [ACTION_KEY, action?.id, 'instances'], queryFn: () => api.instances(action!.id), enabled: enabled && action !== undefined });
}

export function usePendingSummary() {
  return useQuery({ queryKey: [ACTIONS_KEY, 'summary'], queryFn: api.summary, refetchInterval: 60_000 });
}

/** The last 30 days by status, for Home's chart. */
export function useActivity() {
  return useQuery({ queryKey: [ACTIONS_KEY, 'activity'], queryFn: api.activity, refetchInterval: 60_000 });
}

/** A decision on one or more actions of one type; every way out (success or not) refreshes the lists to the truth. */
export type Decision =
  | { kind: 'approve' | 'reject' | 'undo'; actions: Action[] }
  | { kind: 'undo_instances'; actions: Action[]; instances: Action[]; deviceCount: number };

/** Every target of the decision: the actions, plus the other instances of a quarantined file. */
export const targets = (decision: Decision): Action[] => (decision.kind === 'undo_instances' ? [...decision.actions, ...decision.instances] : decision.actions);

export function useDecide() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: ({ decision, comment }: { decision: Decision; comment: string }): Promise<BulkResult> => {
      const ids = decision.actions.map((a) => a.id);
      switch (decision.kind) {
        case 'approve': return api.approve({ ids, comment });
        case 'reject': return api.reject({ ids, comment });
        case 'undo': return api.undo({ ids, comment });
        case 'undo_instances': return api.undoInstances(decision.actions[0]!.id, comment);
      }
    },
    onSettled: () => Promise.all([
      queryClient.invalidateQueries({ queryKey: [ACTIONS_KEY] }),
      queryClient.invalidateQueries({ queryKey: [ACTION_KEY] }),
    ]),
  });
}

/** The time now, re-read every `intervalMs`: enough for countdowns without re-rendering every second. */
export function useNow(intervalMs = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs]);
  return now;
}
