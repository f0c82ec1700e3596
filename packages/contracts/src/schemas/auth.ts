import { Type, type Static } from 'typebox';
import { PERMISSIONS, ROLES } from '../roles.ts';
import { IdSchema, TimestampSchema } from './common.ts';

export const RoleSchema = Type.Enum(ROLES);
export const PermissionSchema = Type.Enum(PERMISSIONS);
export const UsernameSchema = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$' });
export const PasswordSchema = Type.String({ minLength: 1, maxLength: 256 });
export const NewPasswordSchema = Type.String({ minLength: 12, maxLength: 256 });

export const LoginBodySchema = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: PasswordSchema,
}, { additionalProperties: false });
export type LoginBody = Static<typeof LoginBodySchema>;

export const UserSchema = Type.Object({
  id: IdSchema,
  username: Type.String(),
  displayName: Type.String(),
  role: RoleSchema,
  disabled: Type.Boolean(),
  deviceGroupIds: Type.Array(IdSchema),
  createdAt: TimestampSchema,
});
export type User = Static<typeof UserSchema>;

export const SessionInfoSchema = Type.Object({
  user: UserSchema,
  permissions: Type.Array(PermissionSchema),
  /** Send it back as `x-csrf-token` on every state-changing request made with the session cookie. */
  csrfToken: Type.String(),
});

export const CreateUserBodySchema = Type.Object({
  username: UsernameSchema,
  displayName: Type.Optional(Type.String({ maxLength: 128 })),
  role: RoleSchema,
  password: NewPasswordSchema,
  deviceGroupIds: Type.Optional(Type.Array(IdSchema, { maxItems: 100 })),
}, { additionalProperties: false });
export type CreateUserBody = Static<typeof CreateUserBodySchema>;

export const UpdateUserBodySchema = Type.Object({
  role: Type.Optional(RoleSchema),
  disabled: Type.Optional(Type.Boolean()),
  deviceGroupIds: Type.Optional(Type.Array(IdSchema, { maxItems: 100 })),
}, { additionalProperties: false });
export type UpdateUserBody = Static<typeof UpdateUserBodySchema>;

export const TokenSchema = Type.Object({
  id: IdSchema,
  name: Type.String(),
  userId: IdSchema,
  scopes: Type.Array(PermissionSchema),
  createdAt: TimestampSchema,
  expiresAt: TimestampSchema,
  revokedAt: Type.Union([TimestampSchema, Type.Null()]),
});
export type Token = Static<typeof TokenSchema>;

export const CreateTokenBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  scopes: Type.Array(PermissionSchema, { minItems: 1, maxItems: PERMISSIONS.length }),
  expiresInDays: Type.Integer({ minimum: 1, maximum: 365 }),
}, { additionalProperties: false });
export type CreateTokenBody = Static<typeof CreateTokenBodySchema>;

/** The secret is shown once, in this response, and stored only as a hash. */
export const CreatedTokenSchema = Type.Object({ token: TokenSchema, secret: Type.String() });
