import {
  Button, Field, Input, MessageBar, MessageBarBody, MessageBarTitle, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow,
  Text, Title2, makeStyles, tokens,
} from '@fluentui/react-components';
import type { AuditEntry, AuditVerification, ListAuditQuery } from '@quell/contracts';
import { keepPreviousData, useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { useOpenAction } from '../action-center/flyout-host.tsx';
import { formatDateTime, shortId } from '../format.ts';
import { Link, navigate, useLocation } from '../router.tsx';

const useStyles = makeStyles({
  head: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalL, flexWrap: 'wrap' },
  bar: { display: 'flex', flexWrap: 'wrap', gap: tokens.spacingHorizontalM, alignItems: 'flex-end', margin: `${tokens.spacingVerticalM} 0` },
  text: { wordBreak: 'break-all' },
  change: { margin: 0, whiteSpace: 'pre-wrap', wordBreak: 'break-all', fontFamily: tokens.fontFamilyMonospace, fontSize: tokens.fontSizeBase200, maxWidth: '520px' },
  pager: { display: 'flex', alignItems: 'center', gap: tokens.spacingHorizontalM, marginTop: tokens.spacingVerticalM },
  verify: { margin: `${tokens.spacingVerticalM} 0` },
});

const FILTERS = ['actor', 'kind', 'targetId', 'from', 'to'] as const;
type AuditFilters = Partial<Record<(typeof FILTERS)[number], string>>;

function filtersFrom(search: URLSearchParams): AuditFilters {
  const filters: AuditFilters = {};
  for (const key of FILTERS) {
    const value = search.get(key);
    if (!value) continue;
    if (key === 'from' || key === 'to') {
      if (!Number.isNaN(Date.parse(value))) filters[key] = new Date(value).toISOString();
    } else if (value.length <= 128) filters[key] = value;
  }
  return filters;
}

const toSearch = (filters: AuditFilters): string => {
  const search = new URLSearchParams(Object.entries(filters).filter(([, v]) => v) as Array<[string, string]>).toString();
  return search ? `?${search}` : '';
};

/**
 * The verification in words: what was checked, and where the chain breaks if it does. A user scoped to
 * device groups is told only whether it holds: the rest would speak of other groups' entries.
 */
function verificationText(result: AuditVerification): string {
  if (result.checked === undefined) {
    return result.ok
      ? 'The chain is intact: every entry, of every device group, is linked to the one before and matches its content.'
      : 'The chain is broken: someone edited, removed or reordered the log. An administrator who sees every device group can see where.';
  }
  const entries = `${result.checked.toLocaleString()} ${result.checked === 1 ? 'entry' : 'entries'}`;
  if (result.ok) return `The chain is intact: ${entries} checked, each linked to the one before and matching its content.`;
  return `The chain is broken at entry ${result.firstBadSeq ?? '?'}: ${result.reason ?? 'it does not match'}. ${entries} before it are intact. Someone edited, removed or reordered the log.`;
}

const describe = (value: unknown): string => (value === null || value === undefined ? '' : JSON.stringify(value, null, 1));

/** The hash-chained audit log, newest first, with filters in the URL and a verification of the whole chain. */
export default function AuditPage() {
  const styles = useStyles();
  const { search } = useLocation();
  const filters = filtersFrom(search);
  return (
    <>
      <div className={styles.head}>
        <Title2 as="h1">Audit log</Title2>
      </div>
      <Verify />
      {/* Both start again when the filters change; siblings need keys of their own. */}
      <FilterBar key={`filters${toSearch(filters)}`} filters={filters} />
      <AuditTable key={`table${toSearch(filters)}`} filters={filters} />
    </>
  );
}

function FilterBar({ filters: current }: { filters: AuditFilters }) {
  const styles = useStyles();
  const [draft, setDraft] = useState<AuditFilters>(current);
  const local = (iso: string | undefined): string => {
    if (!iso) return '';
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  };
  const apply = (next: AuditFilters): void => navigate(`/audit${toSearch(next)}`);
  return (
    <form className={styles.bar} role="search" aria-label="Audit filters" onSubmit={(event) => { event.preventDefault(); apply(draft); }}>
      <Field label="Actor"><Input value={draft.actor ?? ''} onChange={(_, d) => setDraft({ ...draft, actor: d.value || undefined })} /></Field>
      <Field label="Kind"><Input value={draft.kind ?? ''} placeholder="e.g. action.approve" onChange={(_, d) => setDraft({ ...draft, kind: d.value || undefined })} /></Field>
      <Field label="Target ID"><Input value={draft.targetId ?? ''} onChange={(_, d) => setDraft({ ...draft, targetId: d.value || undefined })} /></Field>
      <Field label="From"><Input type="datetime-local" value={local(draft.from)} onChange={(_, d) => setDraft({ ...draft, from: d.value ? new Date(d.value).toISOString() : undefined })} /></Field>
      <Field label="To"><Input type="datetime-local" value={local(draft.to)} onChange={(_, d) => setDraft({ ...draft, to: d.value ? new Date(d.value).toISOString() : undefined })} /></Field>
      <Button type="submit" appearance="primary">Apply filters</Button>
      <Button appearance="subtle" disabled={Object.keys(current).length === 0} onClick={() => apply({})}>Clear filters</Button>
    </form>
  );
}

function Verify() {
  const styles = useStyles();
  const verify = useMutation({ mutationFn: api.verifyAudit });
  return (
    <div className={styles.verify}>
      <Button onClick={() => verify.mutate()} disabled={verify.isPending}>Verify chain</Button>
      {verify.isPending && <Spinner size="tiny" label="Checking every entry…" />}
      <div aria-live="polite">
        {verify.isSuccess && (
          <MessageBar intent={verify.data.ok ? 'success' : 'error'} className={styles.verify}>
            <MessageBarBody>
              <MessageBarTitle>{verify.data.ok ? 'Intact' : 'Broken'}</MessageBarTitle>
              <span>{verificationText(verify.data)}</span>
            </MessageBarBody>
          </MessageBar>
        )}
        {verify.isError && <MessageBar intent="error"><MessageBarBody>{problemText(verify.error)}</MessageBarBody></MessageBar>}
      </div>
    </div>
  );
}

/** Where each kind of target has a page of its own. */
const TARGET_PATHS: Record<string, (id: string) => string> = {
  device: (id) => `/devices/${id}`,
  investigation: (id) => `/investigations/${id}`,
  incident: (id) => `/incidents/${id}`,
  alert: (id) => `/alerts?alert=${id}`,
};

/** An entry's target by its name, linked to its page (an action opens its flyout), its id on hover and cut to its telling end. */
function Target({ entry }: { entry: AuditEntry }) {
  const openAction = useOpenAction();
  const { targetType, targetId, targetName } = entry;
  if (targetId === null) return <>{targetType}</>;
  const label = `${targetName ?? targetType} (${shortId(targetId)})`;
  const path = TARGET_PATHS[targetType];
  if (targetType === 'action') return <Button appearance="transparent" size="small" title={targetId} onClick={() => openAction(targetId)}>{label}</Button>;
  return <span title={`${targetType} ${targetId}`}>{path ? <Link to={path(targetId)}>{label}</Link> : label}</span>;
}

/** Sign-ins and sign-outs repeat: a run of the same one by the same actor from the same address shows as one row, unfolded on demand. */
const FOLDED_KINDS = new Set(['auth.login', 'auth.logout', 'auth.login_failed']);

function runsOf(items: AuditEntry[]): AuditEntry[][] {
  const runs: AuditEntry[][] = [];
  for (const entry of items) {
    const last = runs.at(-1);
    const first = last?.[0];
    if (last && first && FOLDED_KINDS.has(entry.kind) && first.kind === entry.kind && first.actor === entry.actor && first.sourceIp === entry.sourceIp) last.push(entry);
    else runs.push([entry]);
  }
  return runs;
}

function AuditTable({ filters }: { filters: AuditFilters }) {
  const styles = useStyles();
  const [pages, setPages] = useState<Array<number | undefined>>([undefined]);
  const before = pages[pages.length - 1];
  const query: ListAuditQuery = { ...filters, limit: 50, ...(before !== undefined ? { before } : {}) };
  const page = useQuery({ queryKey: ['audit', query], queryFn: () => api.listAudit(query), placeholderData: keepPreviousData });
  const items = page.data?.items ?? [];
  const [unfolded, setUnfolded] = useState<Set<number>>(new Set());
  const rows = runsOf(items).flatMap((run) => (run.length === 1 || unfolded.has(run[0]!.seq) ? run.map((entry) => ({ entry, run: [entry] })) : [{ entry: run[0]!, run }]));
  return (
    <>
      {page.isError && <MessageBar intent="error"><MessageBarBody>{problemText(page.error)}</MessageBarBody></MessageBar>}
      <Table aria-label="Audit entries" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>#</TableHeaderCell>
            <TableHeaderCell>Time</TableHeaderCell>
            <TableHeaderCell>Actor</TableHeaderCell>
            <TableHeaderCell>Source IP</TableHeaderCell>
            <TableHeaderCell>Kind</TableHeaderCell>
            <TableHeaderCell>Target</TableHeaderCell>
            <TableHeaderCell>Change</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {rows.map(({ entry: e, run }) => (
            <TableRow key={e.seq}>
              <TableCell>{run.length > 1 ? `${run.at(-1)!.seq}–${e.seq}` : e.seq}</TableCell>
              <TableCell>{run.length > 1 ? `${formatDateTime(run.at(-1)!.at)} – ${formatDateTime(e.at)}` : formatDateTime(e.at)}</TableCell>
              <TableCell className={styles.text} title={e.actor}>{e.actorName ? `${e.actorName} (its agent)` : e.actor}</TableCell>
              <TableCell>{e.sourceIp ?? '—'}</TableCell>
              <TableCell>
                {e.kind}
                {run.length > 1 && <> ×{run.length} <Button appearance="transparent" size="small" onClick={() => setUnfolded(new Set([...unfolded, e.seq]))}>Show each</Button></>}
              </TableCell>
              <TableCell className={styles.text}><Target entry={e} /></TableCell>
              <TableCell>
                {(e.before !== null && e.before !== undefined) || (e.after !== null && e.after !== undefined) ? (
                  <details>
                    <summary>Show</summary>
                    {e.before !== null && e.before !== undefined && <pre className={styles.change}>before: {describe(e.before)}</pre>}
                    {e.after !== null && e.after !== undefined && <pre className={styles.change}>after: {describe(e.after)}</pre>}
                  </details>
                ) : '—'}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {page.isPending && <Spinner label="Loading the audit log…" />}
      {page.isSuccess && items.length === 0 && <Text block>No entry matches these filters.</Text>}
      <nav className={styles.pager} aria-label="Audit pages">
        <Button disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>Newer</Button>
        <Button disabled={!page.data?.nextBefore} onClick={() => setPages([...pages, page.data!.nextBefore!])}>Older</Button>
        {items.length > 0 && <Text>Entries {items[items.length - 1]!.seq}–{items[0]!.seq}</Text>}
      </nav>
    </>
  );
}
