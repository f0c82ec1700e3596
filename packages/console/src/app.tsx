import type { Permission } from '@quell/contracts';
import { Button, Text, makeStaticStyles, makeStyles, mergeClasses, tokens } from '@fluentui/react-components';
import { type ComponentType, Suspense, useEffect } from 'react';
import { DecisionOutcomeBar, DecisionOutcomes } from './action-center/decision-outcome.tsx';
import { FlyoutHost } from './action-center/flyout-host.tsx';
import { Centered, PageLoading } from './layout.tsx';
import { onDemand } from './on-demand.ts';
import { Link, matchPath, navigate, useLocation } from './router.tsx';
import { usePermissions, useSession, useSignOut } from './session/session.tsx';
import { Shortcuts, SkipLink } from './shortcuts.tsx';
import { ThemeMenu } from './theme.tsx';

type PageProps = { params: Record<string, string> };
type PageModule = { default: ComponentType<PageProps> };

/** A page whose code loads on demand (see onDemand); a spinner until it is in. */
function page(load: () => Promise<PageModule>) {
  const code = onDemand(load);
  function Page(props: PageProps) {
    const { module, failed } = code.useModule();
    if (failed) return <Centered>This page could not be loaded. Reload to try again.</Centered>;
    return module ? <module.default {...props} /> : <PageLoading />;
  }
  return { Page, preload: code.preload };
}

const HomePage = page(() => import('./home/home.page.tsx'));
const ActionCenterPage = page(() => import('./action-center/action-center.page.tsx'));
const DevicesPage = page(() => import('./devices/devices.page.tsx'));
const DevicePage = page(() => import('./devices/device.page.tsx'));
const InvestigationsPage = page(() => import('./investigations/investigations.page.tsx'));
const InvestigationPage = page(() => import('./investigations/investigation.page.tsx'));
const IncidentsPage = page(() => import('./incidents/incidents.page.tsx'));
const IncidentPage = page(() => import('./incidents/incident.page.tsx'));
const AlertsPage = page(() => import('./alerts/alerts.page.tsx'));
const IndicatorsPage = page(() => import('./indicators/indicators.page.tsx'));
const AuditPage = page(() => import('./audit/audit.page.tsx'));
const SettingsPage = page(() => import('./settings/settings.page.tsx'));

const ROUTES: Array<{ pattern: string; page: ReturnType<typeof page>; permission?: Permission }> = [
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

/** The page of the address the console was opened at starts loading now, alongside the session: a first visit seldom waits for it. */
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
