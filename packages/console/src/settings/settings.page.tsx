import { Tab, TabList, Title2 } from '@fluentui/react-components';
import { navigate, useLocation } from '../router.tsx';
import { useStyles } from './settings-shared.tsx';
import { EnrolmentTab, TokensTab } from './tokens-tab.tsx';
import { GroupsTab } from './groups-tab.tsx';
import { PolicyTab } from './policy-tab.tsx';
import { UsersTab } from './users-tab.tsx';

const TABS = { users: 'Users and roles', groups: 'Device groups', tokens: 'API tokens', enrolment: 'Enrolment tokens', policy: 'Approvals and expiry' } as const;
type TabId = keyof typeof TABS;

/** Security Administrator and up: users, device groups, tokens and the approval policy; the tab is in the URL. */
export default function SettingsPage() {
  const { search } = useLocation();
  const wanted = search.get('tab') ?? 'users';
  const tab: TabId = wanted in TABS ? (wanted as TabId) : 'users';
  const styles = useStyles();
  return (
    <>
      <Title2 as="h1">Settings</Title2>
      <TabList selectedValue={tab} onTabSelect={(_, data) => navigate(`/settings?tab=${String(data.value)}`)}>
        {(Object.keys(TABS) as TabId[]).map((t) => <Tab key={t} value={t}>{TABS[t]}</Tab>)}
      </TabList>
      <div className={styles.panel} role="tabpanel" aria-label={TABS[tab]}>
        {tab === 'users' && <UsersTab />}
        {tab === 'groups' && <GroupsTab />}
        {tab === 'tokens' && <TokensTab />}
        {tab === 'enrolment' && <EnrolmentTab />}
        {tab === 'policy' && <PolicyTab />}
      </div>
    </>
  );
}
