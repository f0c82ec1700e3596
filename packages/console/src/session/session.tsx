import { ACTION_CATALOGUE, type ActionType, type Permission, ROLE_LABELS, roleAtLeast, roleHas } from '@quell/contracts';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type ReactNode, createContext, useContext } from 'react';
import { ApiError, type SessionInfo, api } from '../api/api-client.ts';
import { Centered } from '../layout.tsx';
import { SignIn } from './sign-in.tsx';

export const SESSION_KEY = ['session'] as const;

const SessionContext = createContext<SessionInfo | null>(null);

/** The signed-in user; only rendered below SessionGate, which shows sign-in until there is one. */
export function useSession(): SessionInfo {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession needs a signed-in user (render it inside SessionGate)');
  return session;
}

/** Asks the server who we are; a 401 means signed out, shown as the sign-in page. */
export function SessionGate({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const session = useQuery({
    queryKey: SESSION_KEY,
    queryFn: () => api.me().catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 401) return null;
      throw error;
    }),
    staleTime: Infinity,
    retry: false,
  });
  if (session.isPending) return <Centered>Loading…</Centered>;
  if (session.isError) return <Centered>The server cannot be reached. Reload the page to try again.</Centered>;
  if (!session.data) return <SignIn onSignedIn={(info) => queryClient.setQueryData(SESSION_KEY, info)} />;
  return <SessionContext.Provider value={session.data}>{children}</SessionContext.Provider>;
}

export function useSignOut() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: api.logout,
    onSettled: () => {
      queryClient.removeQueries({ predicate: (query) => query.queryKey[0] !== SESSION_KEY[0] });
      queryClient.setQueryData(SESSION_KEY, null);
    },
  });
}

/** What the signed-in role may do, from the contracts' role table; the server enforces the same. */
export function usePermissions() {
  const { user } = useSession();
  const roleLabel = ROLE_LABELS[user.role];
  return {
    roleLabel,
    has: (permission: Permission): boolean => roleHas(user.role, permission),
    /** Null when the role may undo this type, else the reason it may not. */
    undoRefusal(type: ActionType): string | null {
      const { undoType, undoRole } = ACTION_CATALOGUE[type];
      if (undoType === null || undoRole === null) return `${ACTION_CATALOGUE[type].label} cannot be undone`;
      if (!roleHas(user.role, 'actions:undo') || !roleAtLeast(user.role, undoRole)) {
        return `Undoing ${ACTION_CATALOGUE[type].label.toLowerCase()} needs the ${ROLE_LABELS[undoRole]} role or higher; you are ${roleLabel}`;
      }
      return null;
    },
    /** Null when the role may approve and reject, else why not. */
    decideRefusal: (): string | null => (roleHas(user.role, 'actions:decide') ? null : `Your role, ${roleLabel}, can view actions but not approve or reject them`),
  };
}
