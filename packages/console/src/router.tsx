/**
 * A small router over the History API: the URL is the state (path and search),
 * so a view with its filters can be shared and survives a reload.
 */
import { Link as FluentLink } from '@fluentui/react-components';
import { type MouseEvent, type ReactNode, useSyncExternalStore } from 'react';

const listeners = new Set<() => void>();
const notify = (): void => listeners.forEach((listener) => listener());
window.addEventListener('popstate', notify);

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  notify();
}

export interface Location { pathname: string; search: URLSearchParams }

/** The current path and query; re-renders on every navigation. */
export function useLocation(): Location {
  const href = useSyncExternalStore(subscribe, () => window.location.pathname + window.location.search);
  const url = new URL(href, window.location.origin);
  return { pathname: url.pathname, search: url.searchParams };
}

/** `/devices/:id` against `/devices/abc` → `{ id: 'abc' }`, or null. */
export function matchPath(pattern: string, pathname: string): Record<string, string> | null {
  const want = pattern.split('/');
  const got = (pathname.length > 1 ? pathname.replace(/\/$/, '') : pathname).split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const part = want[i]!;
    if (part.startsWith(':')) {
      try {
        params[part.slice(1)] = decodeURIComponent(got[i]!);
      } catch {
        return null;
      }
    } else if (part !== got[i]) return null;
  }
  return params;
}

/**
 * A Fluent link that navigates inside the console; modified clicks still open a new tab.
 * `closeFirst` closes the surface the link sits in (a flyout) before the page changes under it.
 */
export function Link({ to, children, className, closeFirst, current }: { to: string; children: ReactNode; className?: string; closeFirst?: () => void; current?: boolean }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>): void => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    closeFirst?.();
    navigate(to);
  };
  return <FluentLink href={to} onClick={onClick} className={className} {...(current ? { 'aria-current': 'page' as const } : {})}>{children}</FluentLink>;
}
