import type { Role, TokenRecord } from "../model/token.ts";

/**
 * The API tokens other than the bootstrap admin token ($PITH_HOME/token), kept apart from the
 * resource kinds: no generic route lists them, watches never carry them, and the secret's digest
 * never leaves the registry except to the auth check.
 */
export interface TokenRegistry {
  /** Records a token; fails with StoreError "AlreadyExists" if the id or name is taken. */
  add(record: { id: string; name: string; role: Role; node?: string }, digest: Buffer): Promise<TokenRecord>;
  /** The record and the stored sha256 of the secret, for the auth check. */
  lookup(id: string): Promise<{ record: TokenRecord; digest: Buffer } | undefined>;
  /** Every token, oldest first. */
  list(): Promise<TokenRecord[]>;
  /** Removes the token with this id, or else this name; undefined if there is none. */
  revoke(idOrName: string): Promise<TokenRecord | undefined>;
}
