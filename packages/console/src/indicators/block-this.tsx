import { Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, MessageBar, MessageBarBody, Text } from '@fluentui/react-components';
import type { Evidence, IndicatorType } from '@quell/contracts';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api/api-client.ts';
import { problemText } from '../api/problem-text.ts';
import { Link } from '../router.tsx';
import { usePermissions } from '../session/session.tsx';
import { INDICATOR_TYPE_LABELS } from './indicator-labels.ts';

/** Something an analyst can block from what they look at: a file by a hash, an address, a domain or a URL. */
export interface BlockCandidate { type: IndicatorType; value: string }

const HASH_TYPES: Record<number, IndicatorType> = { 64: 'sha256', 40: 'sha1', 32: 'md5' };

/** What a piece of alert evidence can be blocked by: a file's strongest hash, an address, a URL, or a bare domain name. */
export function blockCandidate(evidence: Evidence): BlockCandidate | null {
  switch (evidence.kind) {
    case 'file':
    case 'process': {
      const hash = evidence.sha256 ?? evidence.sha1 ?? evidence.md5;
      return hash ? { type: HASH_TYPES[hash.length]!, value: hash } : null;
    }
    case 'ip':
      return { type: 'ip', value: evidence.address };
    case 'url':
      return { type: evidence.url.includes('://') ? 'url' : 'domain', value: evidence.url };
    default:
      return null;
  }
}

/** An investigation's file, known by its SHA-256, or by "sha1:…" / "md5:…" until its device hashes it. */
export function entityCandidate(kind: string, value: string): BlockCandidate | null {
  if (kind !== 'file' && kind !== 'process') return null;
  const hash = /^(?:(sha1|md5):)?([0-9a-f]{32,64})$/.exec(value);
  return hash && HASH_TYPES[hash[2]!.length] ? { type: HASH_TYPES[hash[2]!.length]!, value: hash[2]! } : null;
}

const VERBS: Partial<Record<IndicatorType, string>> = { ip: 'Block address', domain: 'Block domain', url: 'Block URL' };

/**
 * "Block this": a block indicator for every device, asked once more with
 * what it does, for Security Administrators; it reaches the agents within
 * seconds. Nothing for roles that cannot create indicators.
 */
export function BlockThis({ candidate, source }: { candidate: BlockCandidate | null; source: string }) {
  const permissions = usePermissions();
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const create = useMutation({
    mutationFn: () => api.createIndicator({ type: candidate!.type, value: candidate!.value, action: 'block', title: `Blocked from ${source}`.slice(0, 256) }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['indicators'] }),
  });
  if (!candidate || !permissions.has('indicators:manage')) return null;
  const what = `${INDICATOR_TYPE_LABELS[candidate.type]} ${candidate.value}`;
  return (
    <>
      <Button size="small" onClick={() => setOpen(true)} aria-label={`Block ${what}`}>{VERBS[candidate.type] ?? 'Block file'}</Button>
      {open && (
        <Dialog open modalType="modal" onOpenChange={(_, data) => !data.open && setOpen(false)}>
          <DialogSurface>
            <DialogBody>
              <DialogTitle>Block {what}?</DialogTitle>
              <DialogContent>
                {create.isSuccess ? (
                  <MessageBar intent="success" role="status">
                    <MessageBarBody>Blocked on every device: the agents enforce it within seconds. <Link to="/indicators">See it with the indicators</Link></MessageBarBody>
                  </MessageBar>
                ) : (
                  <Text block>
                    A block indicator for every device, until it is expired: {candidate.type === 'ip' ? 'traffic from and to it is dropped' : candidate.type === 'domain' || candidate.type === 'url' ? 'DNS queries for it (and the names below it) are refused' : 'the file is quarantined where the antivirus sees it and refused when something runs it'}, and each match is reported with an alert.
                  </Text>
                )}
                {create.isError && <MessageBar intent="error" role="alert"><MessageBarBody>{problemText(create.error)}</MessageBarBody></MessageBar>}
              </DialogContent>
              <DialogActions>
                {!create.isSuccess && <Button appearance="primary" disabled={create.isPending} onClick={() => create.mutate()}>Block</Button>}
                <Button onClick={() => setOpen(false)}>{create.isSuccess ? 'Close' : 'Cancel'}</Button>
              </DialogActions>
            </DialogBody>
          </DialogSurface>
        </Dialog>
      )}
    </>
  );
}
