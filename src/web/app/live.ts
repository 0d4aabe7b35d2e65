import { useEffect, useState } from "preact/hooks";
import { api, getToken } from "./api.ts";
import { PLURALS, serviceOf, type Image, type Kind, type Machine, type PithEvent, type PithNode, type Resource, type Service, type Volume } from "./types.ts";

/**
 * Everything the GUI shows, kept current by one Server-Sent Events watch of every kind
 * (`GET /api/v1/watch`). It starts from a list of each kind, watches from the oldest list's
 * revision (an event the lists already include is recognised by its resourceVersion and skipped),
 * and lets EventSource resume by itself: it sends Last-Event-ID, and the server continues after
 * it. Only if the server refuses the resumed watch (its history was compacted, 410) is everything
 * listed again.
 */
export type Connection = "loading" | "live" | "reconnecting" | "offline";

interface ListResponse<R> {
  metadata: { resourceVersion: string };
  items: R[];
}

export interface ReadySample {
  machine: string;
  image: string;
  readyMs: number;
}

const KINDS: Kind[] = ["Service", "Machine", "Node", "Image", "Event", "Secret", "Volume"];
const rv = (object: Resource): number => Number(object.metadata.resourceVersion);

export class LiveState {
  readonly objects: Record<Kind, Map<string, Resource>> = {
    Service: new Map(),
    Machine: new Map(),
    Node: new Map(),
    Image: new Map(),
    Event: new Map(),
    Secret: new Map(),
    Volume: new Map(),
  };
  /** Boot-to-ready times of every machine seen since the page opened, also after it is gone. */
  readonly readySamples = new Map<string, ReadySample>();
  connection: Connection = "loading";
  error = "";
  loaded = false;
  version = 0;

  private source: EventSource | undefined;
  private readonly listeners = new Set<() => void>();
  private notifyTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryMs = 1000;
  private stopped = false;

  get services(): Service[] {
    return sorted(this.objects.Service) as Service[];
  }
  get machines(): Machine[] {
    return sorted(this.objects.Machine) as Machine[];
  }
  get nodes(): PithNode[] {
    return sorted(this.objects.Node) as PithNode[];
  }
  get images(): Image[] {
    return sorted(this.objects.Image) as Image[];
  }
  get volumes(): Volume[] {
    return sorted(this.objects.Volume) as Volume[];
  }
  /** Events, newest first. */
  get events(): PithEvent[] {
    return ([...this.objects.Event.values()] as PithEvent[]).sort(
      (a, b) => b.spec.at.localeCompare(a.spec.at) || rv(b) - rv(a),
    );
  }

  service(name: string): Service | undefined {
    return this.objects.Service.get(name) as Service | undefined;
  }
  machine(name: string): Machine | undefined {
    return this.objects.Machine.get(name) as Machine | undefined;
  }
  image(name: string): Image | undefined {
    return this.objects.Image.get(name) as Image | undefined;
  }
  imageByDigest(digest: string | undefined): Image | undefined {
    if (!digest) return undefined;
    return this.images.find((i) => i.spec.digest === digest);
  }
  machinesOf(service: string): Machine[] {
    return this.machines.filter((m) => serviceOf(m) === service);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.stopped = false;
    void this.resync();
  }

  stop(): void {
    this.stopped = true;
    this.source?.close();
    this.source = undefined;
    clearTimeout(this.retryTimer);
    clearTimeout(this.notifyTimer);
  }

  /** Lists every kind, then watches from there. */
  private async resync(): Promise<void> {
    this.source?.close();
    this.source = undefined;
    try {
      const lists = await Promise.all(KINDS.map((kind) => api<ListResponse<Resource>>("GET", `/api/v1/${PLURALS[kind]}`)));
      if (this.stopped) return;
      lists.forEach((list, i) => {
        const map = this.objects[KINDS[i]!];
        map.clear();
        for (const object of list.items) map.set(object.metadata.name, object);
      });
      for (const machine of this.objects.Machine.values()) this.sample(machine as Machine);
      const from = Math.min(...lists.map((l) => Number(l.metadata.resourceVersion)));
      this.loaded = true;
      this.error = "";
      this.watch(String(from));
      this.retryMs = 1000;
    } catch (error) {
      if (this.stopped || !getToken()) return;
      this.connection = "offline";
      this.error = (error as Error).message;
      this.retry();
    }
    this.notify();
  }

  private retry(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.resync(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 15_000);
  }

  private watch(from: string): void {
    const token = getToken();
    if (!token) return;
    const url = `/api/v1/watch?resourceVersion=${encodeURIComponent(from)}&token=${encodeURIComponent(token)}`;
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.connection = "live";
      this.notify();
    };
    for (const type of ["ADDED", "MODIFIED", "DELETED"] as const) {
      source.addEventListener(type, (event) => {
        const message = event as MessageEvent<string>;
        this.apply(type, JSON.parse(message.data) as Resource, Number(message.lastEventId));
      });
    }
    source.onerror = () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server answered, but not with a stream (410, 401...): start over from a list.
        source.close();
        this.connection = "reconnecting";
        this.retry();
      } else {
        // The connection dropped: EventSource reconnects by itself, from Last-Event-ID.
        this.connection = "reconnecting";
      }
      this.notify();
    };
  }

  private apply(type: "ADDED" | "MODIFIED" | "DELETED", object: Resource, revision: number): void {
    const map = this.objects[object.kind];
    if (!map) return;
    const name = object.metadata.name;
    const known = map.get(name);
    if (type === "DELETED") {
      // A deletion older than what a list showed is about an earlier object of that name.
      if (known && rv(known) <= revision) map.delete(name);
    } else if (!known || rv(known) <= rv(object)) {
      map.set(name, object);
      if (object.kind === "Machine") this.sample(object as Machine);
    }
    this.notify();
  }

  private sample(machine: Machine): void {
    const readyMs = machine.status?.timings?.readyMs;
    if (readyMs !== undefined) this.readySamples.set(machine.metadata.uid, { machine: machine.metadata.name, image: machine.spec.image, readyMs });
  }

  /** Renders at most every 50 ms, however many events arrive. */
  private notify(): void {
    if (this.notifyTimer !== undefined) return;
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = undefined;
      this.version++;
      for (const listener of this.listeners) listener();
    }, 50);
  }
}

const sorted = (map: Map<string, Resource>): Resource[] => [...map.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));

export const live = new LiveState();

/** Re-renders the calling component whenever the live state changes. */
export function useLive(): LiveState {
  const [, setVersion] = useState(live.version);
  useEffect(() => live.subscribe(() => setVersion(live.version)), []);
  return live;
}

/** The current time, refreshed every `ms` (for "5 s ago"; no server request). */
export function useNow(ms = 5000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
