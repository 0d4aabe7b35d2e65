/**
 * API tokens and the roles they carry. The secret itself is never kept: the control plane stores
 * the sha256 of it, and shows a token's secret once, when it is created.
 */
export const ROLES = ["admin", "read-only", "node", "proxy"] as const;
export type Role = (typeof ROLES)[number];

/** What the control plane knows of a token besides its hash; safe to show to an admin. */
export interface TokenRecord {
  /** 16 hex digits; also the first part of the token itself (`pith_<id>_<secret>`). */
  id: string;
  /** A unique label chosen by its creator (default `<role>[-<node>]-<id prefix>`). */
  name: string;
  role: Role;
  /** The node a `node` token acts for; absent for other roles. */
  node?: string;
  createdAt: string;
}

export const isRole = (value: unknown): value is Role => (ROLES as readonly unknown[]).includes(value);
