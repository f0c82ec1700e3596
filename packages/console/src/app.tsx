import { Button, Text, makeStaticStyles, makeStyles, tokens } from '@fluentui/react-components';
import { type ComponentType, Suspense, lazy, useEffect } from 'react';
import { FlyoutHost } from './action-center/flyout-host.tsx';
import { Centered, PageLoading } from './layout.tsx';
import { Link, matchPath, navigate, useLocation } from './router.tsx';
import { usePermissions, useSession, useSignOut } from './session/session.tsx';

const ActionCenterPage = lazy(() => import('./action-center/action-center.page.tsx'));
const DevicePage = lazy(() => import('./devices/device.page.tsx'));
const InvestigationPage = lazy(() => import('./investigations/investigation.page.tsx'));

/** Client routes: the first whose pattern matches renders, with the path's parameters. */
const ROUTES: Array<{ pattern: string; page: ComponentType<{ params: Record<string, string> }> }> = [
  { pattern: '/action-center/:tab', page: ActionCenterPage },
  { pattern: '/devices/:id', page: DevicePage },
  { pattern: '/investigations/:id', page: InvestigationPage },
];

const useGlobalStyles = makeStaticStyles({
  body: { margin: 0, backgroundColor: tokens.colorNeutralBackground1 },
});

const useStyles = makeStyles({
  header: {
    display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalXL, padding: `${tokens.spacingVerticalS} ${tokens.spacingHorizontalXL}`,
    backgroundColor: tokens.colorBrandBackground, color: tokens.colorNeutralForegroundOnBrand,
  },
  brand: { fontWeight: tokens.fontWeightSemibold, fontSize: tokens.fontSizeBase400, color: tokens.colorNeutralForegroundOnBrand },
  nav: { display: 'flex', gap: tokens.spacingHorizontalL, flexGrow: 1 },
  navLink: { color: tokens.colorNeutralForegroundOnBrand, ':hover': { color: tokens.colorNeutralForegroundOnBrand } },
  user: { display: 'flex', flexDirection: 'column', alignItems: 'flex-end', lineHeight: tokens.lineHeightBase200 },
  main: { padding: `${tokens.spacingVerticalL} ${tokens.spacingHorizontalXL}` },
});

export function App() {
  useGlobalStyles();
  const styles = useStyles();
  const { user } = useSession();
  const { roleLabel } = usePermissions();
  const signOut = useSignOut();
  const { pathname } = useLocation();

  useEffect(() => {
    if (pathname === '/' || pathname === '/action-center') navigate('/action-center/pending', { replace: true });
  }, [pathname]);

  const route = ROUTES.map((r) => ({ ...r, params: matchPath(r.pattern, pathname) })).find((r) => r.params);
  const Page = route?.page;

  return (
    <>
      <header className={styles.header}>
        <Text className={styles.brand}>Quell</Text>
        <nav className={styles.nav} aria-label="Main">
          <Link to="/action-center/pending" className={styles.navLink}>Action center</Link>
        </nav>
        <div className={styles.user} aria-label="Signed in user">
          <Text weight="semibold">{user.displayName || user.username}</Text>
          <Text size={200}>{roleLabel}</Text>
        </div>
        <Button appearance="primary" onClick={() => signOut.mutate()} disabled={signOut.isPending}>Sign out</Button>
      </header>
      <main className={styles.main}>
        <FlyoutHost>
          <Suspense fallback={<PageLoading />}>
            {Page && route?.params ? <Page params={route.params} /> : <Centered>No such page. <Link to="/action-center/pending">Open the Action center</Link></Centered>}
          </Suspense>
        </FlyoutHost>
      </main>
    </>
  );
}
