/**
 * The fixed lists of values the API's schemas are built from, as plain
 * constants: what the console imports without the schema library (the
 * schemas' own modules, which build TypeBox objects as they load, stay out
 * of its bundle).
 */

export const ALERT_SEVERITIES = ['informational', 'low', 'medium', 'high'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];
export const ALERT_STATUSES = ['new', 'in_progress', 'resolved'] as const;
export const ALERT_CLASSIFICATIONS = ['true_positive', 'informational_expected', 'false_positive'] as const;
export const ALERT_DETERMINATIONS = [
  'malware', 'multistage_attack', 'malicious_user_activity', 'unwanted_software', 'phishing', 'compromised_account',
  'security_testing', 'line_of_business_application', 'confirmed_activity', 'not_malicious', 'not_enough_information', 'other',
] as const;

export const INVESTIGATION_STATUSES = [
  'running', 'pending_action', 'remediated', 'partially_remediated', 'no_threats_found', 'failed', 'terminated_by_user', 'terminated_by_system',
] as const;
export type InvestigationStatus = (typeof INVESTIGATION_STATUSES)[number];
/** The statuses of an investigation that has ended. */
export const INVESTIGATION_ENDED: readonly InvestigationStatus[] = ['remediated', 'partially_remediated', 'no_threats_found', 'failed', 'terminated_by_user', 'terminated_by_system'];

/** What an indicator matches: file hashes, network addresses, and certificate thumbprints. */
export const INDICATOR_TYPES = ['sha256', 'sha1', 'md5', 'ip', 'url', 'domain', 'certificate'] as const;
export type IndicatorType = (typeof INDICATOR_TYPES)[number];
/** The indicator types agents enforce: files by hash, traffic by address, DNS by domain and by a URL's host. */
export const ENFORCED_INDICATOR_TYPES = ['sha256', 'sha1', 'md5', 'ip', 'domain', 'url'] as const satisfies readonly IndicatorType[];
/**
 * allow: never remediated; audit: an alert only; block: malicious, prevented;
 * block_and_remediate: malicious, and what exists is remediated.
 */
export const INDICATOR_ACTIONS = ['allow', 'audit', 'block', 'block_and_remediate'] as const;
export type IndicatorAction = (typeof INDICATOR_ACTIONS)[number];

export const ACTION_SORT_FIELDS = ['requestedAt', 'updatedAt'] as const;
export type ActionSortField = (typeof ACTION_SORT_FIELDS)[number];
export const TIME_RANGES = ['day', 'week', '30d', '6m', 'custom'] as const;
export type TimeRange = (typeof TIME_RANGES)[number];

export const AUTOMATION_LEVELS = ['full', 'semi_any_folder', 'semi_core_folders', 'semi_non_temp_folders', 'none'] as const;
export type AutomationLevel = (typeof AUTOMATION_LEVELS)[number];
