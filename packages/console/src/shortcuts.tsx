import { makeStyles, tokens } from '@fluentui/react-components';
import { type MouseEvent, Suspense, lazy, useEffect, useState } from 'react';

/** The list of keys: its code loads the first time `?` is pressed. */
const ShortcutsDialog = lazy(() => import('./shortcuts-dialog.tsx'));

const useStyles = makeStyles({
  skip: {
    position: 'absolute', left: '-10000px', top: 'auto', padding: tokens.spacingHorizontalS,
    backgroundColor: tokens.colorNeutralBackground1, color: tokens.colorBrandForegroundLink, zIndex: 1000,
    ':focus': { left: tokens.spacingHorizontalS, top: tokens.spacingVerticalS },
  },
});

const firstRow = (): HTMLElement | null => document.querySelector<HTMLElement>('main tr[data-action-id]');

/** Keys typed into a field are text, not shortcuts. */
function typing(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

/** The first stop of the Tab key: straight to the page's list, or to the page when it has none. */
export function SkipLink() {
  const onClick = (event: MouseEvent<HTMLAnchorElement>): void => {
    event.preventDefault();
    (firstRow() ?? document.querySelector<HTMLElement>('main'))?.focus();
  };
  return <a href="#main" className={useStyles().skip} onClick={onClick}>Skip to the list</a>;
}

/**
 * The console's keys anywhere: `?` lists them, `/` goes to the search box, j / k
 * go to the list when focus is not on it yet (the rows handle them from there).
 */
export function Shortcuts() {
  const [open, setOpen] = useState(false);
  useEffect(() => {
    const onKey = (event: KeyboardEvent): void => {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      if (document.querySelector('[role="dialog"], [role="alertdialog"]')) return;
      if (event.key === '?') setOpen(true);
      else if (event.key === '/') document.querySelector<HTMLElement>('[data-shortcut="search"]')?.focus();
      else if ((event.key === 'j' || event.key === 'k') && !(event.target instanceof HTMLElement && event.target.closest('tr[data-action-id]'))) firstRow()?.focus();
      else return;
      event.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);
  return open && <Suspense fallback={null}><ShortcutsDialog onClose={() => setOpen(false)} /></Suspense>;
}
