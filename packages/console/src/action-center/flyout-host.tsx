import { type ReactNode, Suspense, createContext, lazy, useContext, useMemo, useState } from 'react';

const ActionFlyout = lazy(() => import('./action-flyout.tsx'));

const FlyoutContext = createContext<(actionId: string) => void>(() => undefined);

/** Opens the action flyout on any page. */
export function useOpenAction(): (actionId: string) => void {
  return useContext(FlyoutContext);
}

/**
 * Holds the one action flyout above the pages, so that it closes properly (its
 * exit, focus and screen-reader state) when one of its links changes the page.
 * Its code loads the first time an action is opened.
 */
export function FlyoutHost({ children }: { children: ReactNode }) {
  const [actionId, setActionId] = useState<string | null>(null);
  const [used, setUsed] = useState(false);
  const open = useMemo(() => (id: string) => {
    setUsed(true);
    setActionId(id);
  }, []);
  return (
    <FlyoutContext.Provider value={open}>
      {children}
      {used && (
        <Suspense fallback={null}>
          <ActionFlyout actionId={actionId} onClose={() => setActionId(null)} />
        </Suspense>
      )}
    </FlyoutContext.Provider>
  );
}
