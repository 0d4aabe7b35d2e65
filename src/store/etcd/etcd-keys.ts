import type { Kind } from "../../model/resource.ts";
import { StoreError } from "../store.ts";

/** A key prefix: starts and ends with "/", printable ASCII, so it can be told apart from a key under it. */
const PREFIX = /^\/([\x21-\x7e]*\/)?$/;
export const DEFAULT_PREFIX = "/pith/";

/**
 * Where Pith keeps things in etcd, all under one prefix (default /pith/), so a cluster can hold
 * several Pith installations or other tenants side by side:
 *   <prefix>objects/<Kind>/<name>   one object per key: its JSON, without resourceVersion (the key's mod revision is)
 *   <prefix>tokens/id/<id>          an API token's record and secret digest
 *   <prefix>tokens/name/<name>      -> its id (a name is taken once)
 *   <prefix>leader                  the controllers' leader, on its lease
 */
export class EtcdKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    if (!PREFIX.test(prefix)) throw new StoreError("Invalid", `etcd key prefix ${JSON.stringify(prefix)} must start and end with "/" and hold only printable ASCII`);
  }

  get objects(): string {
    return `${this.prefix}objects/`;
  }

  ofKind(kind: Kind): string {
    return `${this.objects}${kind}/`;
  }

  object(kind: Kind, name: string): string {
    return `${this.ofKind(kind)}${name}`;
  }

  /** The kind and name in an object key (which this prefix produced). */
  parseObject(key: string): { kind: Kind; name: string } {
    const [kind, ...rest] = key.slice(this.objects.length).split("/");
    return { kind: kind as Kind, name: rest.join("/") };
  }

  get tokens(): string {
    return `${this.prefix}tokens/`;
  }

  tokenById(id: string): string {
    return `${this.tokens}id/${id}`;
  }

  tokenByName(name: string): string {
    return `${this.tokens}name/${name}`;
  }

  get leader(): string {
    return `${this.prefix}leader`;
  }
}
