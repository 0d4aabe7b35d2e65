import type { Database } from "better-sqlite3";
import type { Role, TokenRecord } from "../../model/token.ts";
import type { TokenRegistry } from "../token-registry.ts";
import { StoreError } from "../store.ts";

interface TokenRow {
  id: string;
  name: string;
  role: Role;
  node: string | null;
  digest: Buffer;
  created_at: string;
}

/** The `tokens` table of the store's SQLite file (created by schema version 2). */
export class SqliteTokenRegistry implements TokenRegistry {
  private readonly statements;

  constructor(db: Database) {
    this.statements = {
      insert: db.prepare<[string, string, Role, string | null, Buffer, string]>("INSERT INTO tokens (id, name, role, node, digest, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
      byId: db.prepare<[string], TokenRow>("SELECT * FROM tokens WHERE id = ?"),
      byName: db.prepare<[string], TokenRow>("SELECT * FROM tokens WHERE name = ?"),
      all: db.prepare<[], TokenRow>("SELECT * FROM tokens ORDER BY created_at, id"),
      remove: db.prepare<[string]>("DELETE FROM tokens WHERE id = ?"),
    };
  }

  async add(record: { id: string; name: string; role: Role; node?: string }, digest: Buffer): Promise<TokenRecord> {
    const createdAt = new Date().toISOString();
    try {
      this.statements.insert.run(record.id, record.name, record.role, record.node ?? null, digest, createdAt);
    } catch (error) {
      if ((error as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE" || (error as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        throw new StoreError("AlreadyExists", `a token named ${record.name} already exists`);
      }
      throw error;
    }
    return { ...record, createdAt };
  }

  async lookup(id: string): Promise<{ record: TokenRecord; digest: Buffer } | undefined> {
    const row = this.statements.byId.get(id);
    return row && { record: toRecord(row), digest: row.digest };
  }

  async list(): Promise<TokenRecord[]> {
    return this.statements.all.all().map(toRecord);
  }

  async revoke(idOrName: string): Promise<TokenRecord | undefined> {
    const row = this.statements.byId.get(idOrName) ?? this.statements.byName.get(idOrName);
    if (!row) return undefined;
    this.statements.remove.run(row.id);
    return toRecord(row);
  }
}

function toRecord(row: TokenRow): TokenRecord {
  return { id: row.id, name: row.name, role: row.role, ...(row.node === null ? {} : { node: row.node }), createdAt: row.created_at };
}
