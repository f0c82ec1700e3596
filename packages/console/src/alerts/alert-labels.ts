import type { ALERT_CLASSIFICATIONS, ALERT_DETERMINATIONS, ALERT_STATUSES, Evidence } from '@quell/contracts';

export type AlertStatus = (typeof ALERT_STATUSES)[number];
export type AlertClassification = (typeof ALERT_CLASSIFICATIONS)[number];
export type AlertDetermination = (typeof ALERT_DETERMINATIONS)[number];

export const ALERT_STATUS_LABELS: Record<AlertStatus, string> = { new: 'New', in_progress: 'In progress', resolved: 'Resolved' };

export const CLASSIFICATION_LABELS: Record<AlertClassification, string> = {
  true_positive: 'True positive',
  informational_expected: 'Informational, expected activity',
  false_positive: 'False positive',
};

export const DETERMINATION_LABELS: Record<AlertDetermination, string> = {
  malware: 'Malware',
  multistage_attack: 'Multi-stage attack',
  malicious_user_activity: 'Malicious user activity',
  unwanted_software: 'Unwanted software',
  phishing: 'Phishing',
  compromised_account: 'Compromised account',
  security_testing: 'Security testing',
  line_of_business_application: 'Line-of-business application',
  confirmed_activity: 'Confirmed activity',
  not_malicious: 'Not malicious',
  not_enough_information: 'Not enough information',
  other: 'Other',
};

/** Each value of one piece of evidence with its name, in the order an analyst reads them; all of it is attacker-controlled text. */
export function evidenceValues(e: Evidence): Array<[string, string]> {
  const pairs: Array<[string, string | number | undefined]> = (() => {
    switch (e.kind) {
      case 'file': return [
        ['Path', e.path], ['Change', e.change], ['SHA-256', e.sha256], ['SHA-1', e.sha1], ['MD5', e.md5],
        ['SHA-256 before', e.before?.sha256], ['SHA-1 before', e.before?.sha1], ['MD5 before', e.before?.md5],
        ['Detections', e.detections ? `${e.detections.positives} of ${e.detections.total} (${e.detections.engine})` : undefined],
      ];
      case 'process': return [
        ['Name', e.name], ['Command line', e.commandLine], ['PID', e.pid], ['Path', e.path], ['User', e.user], ['SHA-256', e.sha256], ['SHA-1', e.sha1], ['MD5', e.md5],
        ['Parent', e.parent ? `${e.parent.path ?? e.parent.name}${e.parent.pid !== undefined ? ` (PID ${e.parent.pid})` : ''}` : undefined],
        ['Parent command line', e.parent?.commandLine],
      ];
      case 'service': case 'driver': return [['Name', e.name]];
      case 'scheduled_task': return [['Name', e.name], ['Path', e.path]];
      case 'registry_key': return [['Key', e.key], ['Value', e.value], ['Data', e.data], ['Change', e.change]];
      case 'user': return [['Name', e.name], ['Domain', e.domain]];
      case 'ip': return [['Address', e.address], ['Role', e.role], ['Port', e.port]];
      case 'url': return [['URL', e.url]];
    }
  })();
  return pairs.filter((p): p is [string, string | number] => p[1] !== undefined && p[1] !== '').map(([name, value]) => [name, String(value)]);
}

/** The SHA-256 hashes an alert names: what the false-positive flow undoes and allows. */
export const fileHashes = (evidence: readonly Evidence[]): string[] =>
  [...new Set(evidence.flatMap((e) => (e.kind === 'file' || e.kind === 'process') && e.sha256 ? [e.sha256.toLowerCase()] : []))];
