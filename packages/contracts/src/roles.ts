/** Roles and the permissions each one holds (DESIGN.md §1 and §4). */
export const ROLES = ['security_reader', 'security_operator', 'security_admin', 'global_admin'] as const;
export type Role = (typeof ROLES)[number];

export const ROLE_LABELS = {
  security_reader: 'Security Reader',
  security_operator: 'Security Operator',
  security_admin: 'Security Administrator',
  global_admin: 'Global Administrator',
} as const satisfies Record<Role, string>;

export const PERMISSIONS = [
  'actions:read',
  'actions:create',
  'actions:decide',
  'actions:cancel',
  'actions:undo',
  'investigation_packages:read',
  'devices:read',
  'devices:manage',
  'device_groups:manage',
  'users:manage',
  'tokens:manage',
  'settings:manage',
  'audit:read',
  'alerts:read',
  'alerts:create',
  'alerts:manage',
  'indicators:read',
  'indicators:manage',
  'investigations:read',
  'investigations:manage',
  'metrics:read',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

// metrics:read is fleet-wide: GET /metrics also refuses a user scoped to device groups, whatever the role.
const READER: readonly Permission[] = ['actions:read', 'devices:read', 'audit:read', 'alerts:read', 'indicators:read', 'investigations:read', 'metrics:read'];
const OPERATOR: readonly Permission[] = [...READER, 'actions:create', 'actions:decide', 'actions:cancel', 'actions:undo', 'investigation_packages:read', 'alerts:create', 'alerts:manage', 'investigations:manage'];
const ADMIN: readonly Permission[] = [...OPERATOR, 'devices:manage', 'device_groups:manage', 'users:manage', 'tokens:manage', 'settings:manage', 'indicators:manage'];

export const ROLE_PERMISSIONS = {
  security_reader: READER,
  security_operator: OPERATOR,
  security_admin: ADMIN,
  global_admin: ADMIN,
} as const satisfies Record<Role, readonly Permission[]>;

export function roleRank(role: Role): number {
  return ROLES.indexOf(role);
}

/** True when `role` is `minimum` or a higher role. */
export function roleAtLeast(role: Role, minimum: Role): boolean {
  return roleRank(role) >= roleRank(minimum);
}

export function roleHas(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}
