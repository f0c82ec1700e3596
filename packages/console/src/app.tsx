import type { Permission } from '@quell/contracts';
import { Button, Text, makeStaticStyles, makeStyles, mergeClasses, tokens } from '@fluentui/react-components';
import { type ComponentType, Suspense, use, useEffect } from 'react';
import { DecisionOutcomeBar, DecisionOutcomes } from './action-center/decision-dialog.tsx';
import { FlyoutHost } from './action-center/flyout-host.tsx';
import { Centered, PageLoading } from './layout.tsx';
import { Link, matchPath, navigate, useLocation } from './router.tsx';
import { usePermissions, useSession, useSignOut } from './session/session.tsx';
import { Shortcuts, SkipLink } from './shortcuts.tsx';
import { ThemeMenu } from './theme.tsx';

type PageProps = { params: Record<string, string> };
type PageModule = { default: ComponentType<PageProps> };

/**
 * A page whose code loads on demand. `preload` starts the download; once it is
 * in, the page renders at once, without a Suspense fallback (which React then
 * keeps on screen for at least 300 ms). The current route's page is preloaded
 * while the session is asked for, so a first visit does not wait for it after.
 */
function onDemand(load: () => Promise<PageModule>) {
  let loading: (Promise<PageModule> & { status?: 'fulfilled'; value?: PageModule }) | null = null;
  const preload = (): Promise<PageModule> => {
    if (!loading) {
      const promise: Promise<PageModule> & { status?: 'fulfilled'; value?: PageModule } = load().then((module) => {
        // How React's `use` reads a promise that has settled without suspending.
        Object.assign(promise, { status: 'fulfilled', value: module });
        return module;
      });
      loading = promise;
    }
    return loading;
  };
  function Page(props: PageProps) {
    const { default: Loaded } = use(preload());
    return <Loaded {...props} />;
  }
  return { Page, preload };
}

const HomePage = onDemand(() => import('./home/home.page.tsx'));
const ActionCenterPage = onDemand(() => import('./action-center/action-center.page.tsx'));
const DevicesPage = onDemand(() => import('./devices/devices.page.tsx'));
const DevicePage = onDemand(() => import('./devices/device.page.tsx'));
const InvestigationsPage = onDemand(() => import('./investigations/investigations.page.tsx'));
const InvestigationPage = onDemand(() => import('./investigations/investigation.page.tsx'));
const IncidentsPage = onDemand(() => import('./incidents/incidents.page.tsx'));
const IncidentPage = onDemand(() => import('./incidents/incident.page.tsx'));
const AlertsPage = onDemand(() => import('./alerts/alerts.page.tsx'));
const IndicatorsPage = onDemand(() => import('./indicators/indicators.page.tsx'));
const AuditPage = onDemand(() => import('./audit/audit.page.tsx'));
const SettingsPage = onDemand(() => import('./settings/settings.page.tsx'));

const ROUTES: Array<{ pattern: string; page: ReturnType<typeof onDemand>; permission?: Permission }> = [
  { pattern: '/', page: HomePage },
  { pattern: '/action-center/:tab', page: ActionCenterPage },
  { pattern: '/devices', page: DevicesPage },
  { pattern: '/devices/:id', page: DevicePage },
  { pattern: '/investigations', page: InvestigationsPage },
  { pattern: '/investigations/:id', page: InvestigationPage },
  { pattern: '/incidents', page: IncidentsPage, permission: 'alerts:read' },
  { pattern: '/incidents/:id', page: IncidentPage, permission: 'alerts:read' },
  { pattern: '/alerts', page: AlertsPage, permission: 'alerts:read' },
  { pattern: '/indicators', page: IndicatorsPage, permission: 'indicators:read' },
  { pattern: '/audit', page: AuditPage, permission: 'audit:read' },
  { pattern: '/settings', page: SettingsPage, permission: 'settings:manage' },
];

/** The page of the address the console was opened at starts loading now, alongside the session. */
export function preloadCurrentPage(): void {
  ROUTES.find((r) => matchPath(r.pattern, window.location.pathname))?.page.preload().catch(() => undefined);
}

const NAV: Array<{ to: string; label: string; section: string; permission?: Permission }> = [
  { to: '/', label: 'Home', section: '' },
  { to: '/action-center/pending', label: 'Action center', section: 'action-center' },
  { to: '/devices', label: 'Devices', section: 'devices' },
  { to: '/incidents', label: 'Incidents', section: 'incidents', permission: 'alerts:read' },
  { to: '/alerts', label: 'Alerts', section: 'alerts', permission: 'alerts:read' },
  { to: '/investigations', label: 'Investigations', section: 'investigations' },
  { to: '/indicators', label: 'Indicators', section: 'indicators', permission: 'indicators:read' },
  { to: '/audit', label: 'Audit', section: 'audit', permission: 'audit:read' },
  { to: '/settings', label: 'Settings', section: 'settings', permission: 'settings:manage' },
];

const useGlobalStyles = makeStaticStyles({
  // Its colour is the theme's, set by ThemeRoot: the body is outside Fluent's provider and its tokens.
  body: { margin: 0 },
});

const useStyles = makeStyles({
  header: {
    display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalXL, padding: `${tokens.spacingVerticalS} ${tokens.spacingHorizontalXL}`,
    backgroundColor: tokens.colorBrandBackground, color: tokens.colorNeutralForegroundOnBrand,
  },
  brand: { fontWeight: tokens.fontWeightSemibold, fontSize: tokens.fontSizeBase400, color: tokens.colorNeutralForegroundOnBrand },
  nav: { display: 'flex', gap: tokens.spacingHorizontalL, flexGrow: 1 },
  navLink: { color: tokens.colorNeutralForegroundOnBrand, ':hover': { color: tokens.colorNeutralForegroundOnBrand } },
  current: { textDecorationLine: 'underline', fontWeight: tokens.fontWeightSemibold },
  user: { display: 'flex', flexDirection: 'column', alignItems: 'flex-end', lineHeight: tokens.lineHeightBase200 },
  main: { padding: `${tokens.spacingVerticalL} ${tokens.spacingHorizontalXL}`, ':focus': { outlineStyle: 'none' } },
});

export function App() {
  useGlobalStyles();
  const styles = useStyles();
  const { user } = useSession();
  const { roleLabel, has } = usePermissions();
  const signOut = useSignOut();
  const { pathname } = useLocation();

  useEffect(() => {
    if (pathname === '/action-center') navigate('/action-center/pending', { replace: true });
  }, [pathname]);

  const route = ROUTES.filter((r) => !r.permission || has(r.permission)).map((r) => ({ ...r, params: matchPath(r.pattern, pathname) })).find((r) => r.params);
  const section = pathname.split('/')[1] ?? '';
  const Page = route?.page.Page;

  return (
    <>
      <SkipLink />
      <header className={styles.header}>
        <Text className={styles.brand}>Quell</Text>
        <nav className={styles.nav} aria-label="Main">
          {NAV.filter((n) => !n.permission || has(n.permission)).map((n) => (
            <Link key={n.to} to={n.to} className={mergeClasses(styles.navLink, n.section === section && styles.current)} current={n.section === section}>{n.label}</Link>
          ))}
        </nav>
        <div className={styles.user} aria-label="Signed in user">
          <Text weight="semibold">{user.displayName || user.username}</Text>
          <Text size={200}>{roleLabel}</Text>
        </div>
        <ThemeMenu username={user.username} />
        <Button appearance="primary" onClick={() => signOut.mutate()} disabled={signOut.isPending}>Sign out</Button>
      </header>
      <main id="main" tabIndex={-1} className={styles.main}>
        <DecisionOutcomes>
          <FlyoutHost>
            <DecisionOutcomeBar />
            <Suspense fallback={<PageLoading />}>
              {Page && route?.params ? <Page params={route.params} /> : <Centered>No such page. <Link to="/action-center/pending">Open the Action center</Link></Centered>}
            </Suspense>
          </FlyoutHost>
        </DecisionOutcomes>
      </main>
      <Shortcuts />
    </>
  );
}
