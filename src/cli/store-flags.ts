import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import type { StoreConfig } from "../server/store-backend.ts";
import { userError } from "../shared/errors.ts";
import { pithHome } from "../shared/paths.ts";

export interface StoreFlags {
  store?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
  etcdPrefix?: string;
  leaderTtl?: string;
}

/** A host name, an IPv4 address or a bracketed IPv6 address, then a port. */
const ENDPOINT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/** `pith server`'s store options. */
export function addStoreFlags(command: Command): Command {
  return command
    .option("--store <url>", "where the state is: sqlite:PATH (default: sqlite:$PITH_HOME/state.db) or etcd://HOST:PORT[,HOST:PORT...]")
    .option("--etcd-ca <file>", "etcd over TLS: the CA certificate that signed the members' certificates (PEM)")
    .option("--etcd-cert <file>", "etcd over TLS: this client's certificate (PEM), with --etcd-key")
    .option("--etcd-key <file>", "etcd over TLS: this client's private key (PEM)")
    .option("--etcd-user <name>", "etcd auth: the user (the password comes from --etcd-password-file or PITH_ETCD_PASSWORD, never argv)")
    .option("--etcd-password-file <file>", "etcd auth: a file holding the password")
    .option("--etcd-prefix <prefix>", "etcd: the key prefix of this installation", "/pith/")
    .option("--leader-ttl <seconds>", "etcd: the leader lease's TTL; controllers move within about this after the leader dies", "5");
}

/** The StoreConfig the flags describe; user errors for anything malformed or unreadable. */
export function storeConfigFromFlags(flags: StoreFlags, env: NodeJS.ProcessEnv = process.env): StoreConfig {
  const url = flags.store ?? `sqlite:${join(pithHome(), "state.db")}`;
  const etcdOnly = (["etcdCa", "etcdCert", "etcdKey", "etcdUser", "etcdPasswordFile"] as const).filter((k) => flags[k] !== undefined);
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (path === "") throw userError("BAD_FLAG", "--store sqlite: needs a path", "e.g. --store sqlite:/var/lib/pith/state.db");
    if (etcdOnly.length > 0) throw userError("BAD_FLAG", `--${kebab(etcdOnly[0]!)} applies only to --store etcd://...`);
    return { kind: "sqlite", path };
  }
  if (!url.startsWith("etcd://")) {
    throw userError("BAD_FLAG", `--store must be sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...], got ${JSON.stringify(url)}`);
  }
  const endpoints = url.slice("etcd://".length).replace(/\/$/, "").split(",");
  for (const endpoint of endpoints) {
    const match = ENDPOINT.exec(endpoint);
    const port = match ? Number(match[1]) : 0;
    if (!match || port < 1 || port > 65535) {
      throw userError("BAD_FLAG", `--store: ${JSON.stringify(endpoint)} is not HOST:PORT`, "list the etcd members' client endpoints, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379");
    }
  }
  const ttl = Number(flags.leaderTtl ?? "5");
  if (!Number.isInteger(ttl) || ttl < 2 || ttl > 300) throw userError("BAD_FLAG", `--leader-ttl must be whole seconds from 2 to 300, got ${flags.leaderTtl}`);
  if ((flags.etcdCert === undefined) !== (flags.etcdKey === undefined)) throw userError("BAD_FLAG", "--etcd-cert and --etcd-key go together");
  if (flags.etcdCert !== undefined && flags.etcdCa === undefined) throw userError("BAD_FLAG", "--etcd-cert needs --etcd-ca (the CA the members' certificates are signed by)");
  const password = flags.etcdPasswordFile !== undefined ? readFlagFile("--etcd-password-file", flags.etcdPasswordFile).toString("utf8").replace(/\r?\n$/, "") : env.PITH_ETCD_PASSWORD;
  if (flags.etcdUser === undefined && password !== undefined && flags.etcdPasswordFile !== undefined) throw userError("BAD_FLAG", "--etcd-password-file needs --etcd-user");
  if (flags.etcdUser !== undefined && !password) throw userError("BAD_FLAG", "--etcd-user needs a password: --etcd-password-file FILE or PITH_ETCD_PASSWORD");
  return {
    kind: "etcd",
    endpoints,
    leaderTtlSeconds: ttl,
    ...(flags.etcdPrefix !== undefined && { prefix: flags.etcdPrefix }),
    ...(flags.etcdCa !== undefined && {
      tls: {
        ca: readFlagFile("--etcd-ca", flags.etcdCa),
        ...(flags.etcdCert !== undefined && { cert: readFlagFile("--etcd-cert", flags.etcdCert) }),
        ...(flags.etcdKey !== undefined && { key: readFlagFile("--etcd-key", flags.etcdKey) }),
      },
    }),
    ...(flags.etcdUser !== undefined && password && { auth: { username: flags.etcdUser, password } }),
  };
}

function readFlagFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw userError("BAD_FLAG", `${flag} ${path}: ${(error as Error).message}`);
  }
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
