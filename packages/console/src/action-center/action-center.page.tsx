import { Badge, Tab, TabList, Title2, makeStyles, tokens } from '@fluentui/react-components';
import type { ActionView } from '@quell/contracts';
import { Centered } from '../layout.tsx';
import { Link, navigate, useLocation } from '../router.tsx';
import { type ActionFilters, filtersFromSearch, searchFromFilters } from './action-filters.ts';
import { ActionsView } from './actions-view.tsx';
import { FiltersBar } from './filters-bar.tsx';
import { usePendingSummary } from './use-actions.ts';

const useStyles = makeStyles({
  title: { display: 'block', marginBottom: tokens.spacingVerticalS },
  tabLabel: { display: 'inline-flex', alignItems: 'center', gap: tokens.spacingHorizontalS },
});

const TAB_LABELS: Record<ActionView, string> = { pending: 'Pending', history: 'History' };

/** The Action center: `/action-center/pending` and `/action-center/history`, with the filters in the URL query. */
export default function ActionCenterPage({ params }: { params: Record<string, string> }) {
  const styles = useStyles();
  const { search } = useLocation();
  const summary = usePendingSummary();
  const view = params.tab === 'pending' || params.tab === 'history' ? params.tab : null;
  if (!view) return <Centered>No such tab. <Link to="/action-center/pending">Open Pending</Link></Centered>;

  const filters = filtersFromSearch(search);
  const setFilters = (next: ActionFilters): void => navigate(`/action-center/${view}${searchFromFilters(next)}`);
  const pendingTotal = summary.data?.pendingTotal;

  return (
    <>
      <Title2 as="h1" className={styles.title}>Action center</Title2>
      <TabList selectedValue={view} onTabSelect={(_, data) => navigate(`/action-center/${String(data.value)}${searchFromFilters({ ...filters, status: undefined })}`)}>
        {(['pending', 'history'] as const).map((tab) => (
          <Tab key={tab} value={tab}>
            <span className={styles.tabLabel}>
              {TAB_LABELS[tab]}
              {tab === 'pending' && pendingTotal !== undefined && <Badge appearance="filled" color={pendingTotal > 0 ? 'danger' : 'informative'} size="small">{pendingTotal}</Badge>}
            </span>
          </Tab>
        ))}
      </TabList>
      <FiltersBar key={view} view={view} filters={filters} onChange={setFilters} />
      {/* Keyed by the query: new filters start again from the first page, with nothing selected. */}
      <ActionsView key={`${view}${searchFromFilters(filters)}`} view={view} filters={filters} onFiltersChange={setFilters} label={`${TAB_LABELS[view]} actions`} />
    </>
  );
}
