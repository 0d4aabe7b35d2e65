import type { Role, TokenRecord } from "../../model/token.ts";
import { StoreError } from "../store.ts";
import type { TokenRegistry } from "../token-registry.ts";
import { type EtcdConnection, prefixRange } from "./etcd-connection.ts";
import type { EtcdKeys } from "./etcd-keys.ts";

interface StoredToken {
  record: TokenRecord;
  /** The sha256 of the secret, base64. */
  digest: string;
}

/**
 * API tokens in etcd, outside the objects prefix (no list or watch of objects carries them): one
 * key per token by id, and one per name holding the id, written and removed together in one
 * transaction, so a name is never taken twice nor left pointing at nothing.
 */
export class EtcdTokenRegistry implements TokenRegistry {
  constructor(
    private readonly connection: EtcdConnection,
    private readonly keys: EtcdKeys,
  ) {}

  async add(record: { id: string; name: string; role: Role; node?: string }, digest: Buffer): Promise<TokenRecord> {
    const stored: StoredToken = { record: { ...record, createdAt: new Date().toISOString() }, digest: digest.toString("base64") };
    const byId = Buffer.from(this.keys.tokenById(record.id));
    const byName = Buffer.from(this.keys.tokenByName(record.name));
    const response = await this.connection.txn({
      compare: [
        { key: byId, target: "Create", result: "Equal", create_revision: 0 },
        { key: byName, target: "Create", result: "Equal", create_revision: 0 },
      ],
      success: [{ request_put: { key: byId, value: Buffer.from(JSON.stringify(stored)) } }, { request_put: { key: byName, value: Buffer.from(record.id) } }],
      failure: [],
    });
    if (!response.succeeded) throw new StoreError("AlreadyExists", `a token named ${record.name} already exists`);
    return stored.record;
  }

  async lookup(id: string): Promise<{ record: TokenRecord; digest: Buffer } | undefined> {
    const kv = (await this.connection.range({ key: Buffer.from(this.keys.tokenById(id)) })).kvs[0];
    if (!kv) return undefined;
    const stored = JSON.parse(kv.value.toString()) as StoredToken;
    return { record: stored.record, digest: Buffer.from(stored.digest, "base64") };
  }

  async list(): Promise<TokenRecord[]> {
    const response = await this.connection.range(prefixRange(this.keys.tokenById("")));
    const records = response.kvs.map((kv) => (JSON.parse(kv.value.toString()) as StoredToken).record);
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async revoke(idOrName: string): Promise<TokenRecord | undefined> {
    const found = (await this.lookup(idOrName)) ?? (await this.lookupByName(idOrName));
    if (!found) return undefined;
    const { record } = found;
    await this.connection.txn({
      compare: [],
      success: [{ request_delete_range: { key: Buffer.from(this.keys.tokenById(record.id)) } }, { request_delete_range: { key: Buffer.from(this.keys.tokenByName(record.name)) } }],
      failure: [],
    });
    return record;
  }

  private async lookupByName(name: string): Promise<{ record: TokenRecord; digest: Buffer } | undefined> {
    const kv = (await this.connection.range({ key: Buffer.from(this.keys.tokenByName(name)) })).kvs[0];
    return kv && this.lookup(kv.value.toString());
  }
}
