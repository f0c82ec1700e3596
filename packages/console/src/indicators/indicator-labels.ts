import type { IndicatorAction, IndicatorType } from '@quell/contracts';

/** How the console names each indicator type and action. */
export const INDICATOR_TYPE_LABELS: Record<IndicatorType, string> = {
  sha256: 'SHA-256', sha1: 'SHA-1', md5: 'MD5', ip: 'IP address', url: 'URL', domain: 'Domain', certificate: 'Certificate thumbprint',
};

export const INDICATOR_ACTION_LABELS: Record<IndicatorAction, string> = {
  allow: 'Allow', audit: 'Audit only', block: 'Block', block_and_remediate: 'Block and remediate',
};
