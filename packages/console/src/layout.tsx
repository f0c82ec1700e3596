import { Spinner, makeStyles, tokens } from '@fluentui/react-components';
import type { ReactNode } from 'react';

const useStyles = makeStyles({
  centered: { minHeight: '50vh', display: 'grid', placeItems: 'center', color: tokens.colorNeutralForeground2 },
});

export function Centered({ children }: { children: ReactNode }) {
  return <div className={useStyles().centered}>{children}</div>;
}

export function PageLoading() {
  return <Centered><Spinner label="Loading…" /></Centered>;
}
