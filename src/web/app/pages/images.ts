import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { KIND_SCHEMAS } from "../../../api/schemas/kinds.ts";
import { api, ApiRequestError, describeError } from "../api.ts";
import { ErrorNote, Section, Table } from "../components.ts";
import { fieldProblems, REPLICAS } from "../field-rules.ts";
import { bytes, shortDigest } from "../format.ts";
import { useLive } from "../live.ts";
import { href, navigate } from "../router.ts";
import { API_VERSION, IMAGE_NAME_LABEL, type Image, type ImageInspection } from "../types.ts";

export function ImagesPage(): VNode {
  const live = useLive();
  const images = live.images;
  const users = (image: Image) => live.services.filter((s) => s.status?.imageDigest === image.spec.digest).length;
  return html`<div class="page">
    <h1 id="page-title" tabindex="-1">Images</h1>
    <p class="muted">Images the control plane knows. An image is registered when a service first names it, or when it is created through the API. Open one to see what it holds and to run it as a service.</p>
    <${Section} title="Registered images" id="images">
      <${Table}
        caption="Images"
        rows=${images}
        rowKey=${(i: Image) => i.metadata.name}
        empty="No images are registered yet."
        columns=${[
          { label: "Name", render: (i: Image) => html`<a href=${href.image(i.metadata.name)}>${i.metadata.name}</a>` },
          { label: "Digest", render: (i: Image) => html`<span class="mono">${shortDigest(i.spec.digest)}</span>` },
          { label: "Runtime", render: (i: Image) => i.spec.runtime },
          { label: "Listen", render: (i: Image) => (i.spec.listen.length ? i.spec.listen.map((p) => `:${p}`).join(" ") : html`<span class="muted">none</span>`) },
          { label: "Egress", render: (i: Image) => (i.spec.egress.length ? i.spec.egress.join(" ") : html`<span class="muted">none</span>`) },
          { label: "Memory", render: (i: Image) => `${i.spec.memoryMiB} MiB`, numeric: true },
          { label: "Stored", render: (i: Image) => bytes(i.spec.storedBytes), numeric: true },
          { label: "Services", render: (i: Image) => String(users(i)), numeric: true },
        ]}
      />
    <//>
  </div>`;
}

type Inspection = { state: "loading" } | { state: "ok"; data: ImageInspection } | { state: "error"; message: string };

export function ImagePage({ name }: { name: string }): VNode {
  const live = useLive();
  const image = live.image(name);
  const [inspection, setInspection] = useState<Inspection>({ state: "loading" });
  const exists = image !== undefined;
  useEffect(() => {
    if (!exists) return;
    let cancelled = false;
    setInspection({ state: "loading" });
    api<ImageInspection>("GET", `/api/v1/images/${encodeURIComponent(name)}/inspect`).then(
      (data) => !cancelled && setInspection({ state: "ok", data }),
      (e) => !cancelled && setInspection({ state: "error", message: e instanceof ApiRequestError && e.status === 404 ? `${e.message}.` : describeError(e) }),
    );
    return () => void (cancelled = true);
  }, [name, exists]);

  if (!image) {
    return html`<div class="page">
      <h1 id="page-title" tabindex="-1">Image ${name}</h1>
      <p class="empty">${live.loaded ? html`There is no image named <strong>${name}</strong>.` : "Loading…"}</p>
      <p><a href=${href.images}>All images</a></p>
    </div>`;
  }
  const data = inspection.state === "ok" ? inspection.data : undefined;
  return html`<div class="page">
    <h1 id="page-title" tabindex="-1"><span class="muted kind">Image</span> ${name}</h1>
    <dl class="facts">
      <div class="wide"><dt>Digest</dt><dd class="mono break">${image.spec.digest}</dd></div>
      <div><dt>Runtime</dt><dd>${image.spec.runtime}</dd></div>
      <div><dt>Stored size</dt><dd>${bytes(image.spec.storedBytes)}</dd></div>
      <div><dt>Machine size</dt><dd>${image.spec.memoryMiB} MiB, ${image.spec.vcpus} vCPU</dd></div>
    </dl>

    <div class="grid-2">
      <${Section} title="Capabilities" id="image-capabilities">
        <ul class="caps">
          <li>${image.spec.listen.length ? html`Listens on ${image.spec.listen.map((p) => html`<span class="mono">:${p}</span> `)}` : "Listens on no port"}</li>
          <li>${image.spec.egress.length ? html`May connect to ${image.spec.egress.map((e) => html`<span class="mono">${e}</span> `)}` : "May connect to nothing (no egress)"}</li>
          <li>${image.spec.listen.length || image.spec.egress.length ? "Its kernel has a network device." : "Its kernel has no network device: its sockets reach only the machine itself."}</li>
        </ul>
      <//>
      <${Section} title="Kernel" id="kernel">
        ${data ? html`<${KernelFacts} data=${data} />` : inspection.state === "error" ? html`<p class="muted">Not available: ${inspection.message}</p>` : html`<p class="muted">Loading…</p>`}
      <//>
    </div>

    <${Section} title="Create a service from this image" id="create-service"><${CreateService} image=${image} /><//>

    <${Section} title="Files" id="files">
      ${data ? html`<${Files} data=${data} />` : inspection.state === "error" ? html`<${ErrorNote}>${inspection.message}<//>` : html`<p class="muted">Loading…</p>`}
    <//>
  </div>`;
}

function KernelFacts({ data }: { data: ImageInspection }): VNode {
  const { kernel, generic } = data;
  const max = Math.max(kernel.options, generic?.options ?? 0, 1);
  return html`<div>
    <div class="compare" role="list">
      <div class="compare-row" role="listitem">
        <span class="compare-label">This image's kernel</span>
        <span class="compare-track"><span class="compare-bar ours" style=${{ width: `${((kernel.options / max) * 100).toFixed(1)}%` }}></span></span>
        <span class="compare-value" data-testid="kernel-options">${kernel.options} options</span>
      </div>
      ${generic
        ? html`<div class="compare-row" role="listitem">
            <span class="compare-label">${generic.kernel}</span>
            <span class="compare-track"><span class="compare-bar generic" style=${{ width: `${((generic.options / max) * 100).toFixed(1)}%` }}></span></span>
            <span class="compare-value">${generic.options} options</span>
          </div>`
        : null}
    </div>
    <p>${generic ? html`<strong>${((kernel.options / generic.options) * 100).toFixed(0)}%</strong> of the generic kernel's options. ` : "Debian's generic kernel config is not installed here, so there is nothing to compare with. "}Linux ${kernel.sourceVersion}, ${bytes(kernel.bytes)}, config <span class="mono">${kernel.configHash.slice(0, 12)}</span>.</p>
    <details>
      <summary>Fragments: ${kernel.fragments.map((f) => f.name).join(", ")}</summary>
      <ul class="fragments">${kernel.fragments.map((f) => html`<li><strong>${f.name}</strong>: ${f.options.length ? html`<span class="mono small">${f.options.join(" ")}</span>` : "no extra options"}</li>`)}</ul>
    </details>
  </div>`;
}

function Files({ data }: { data: ImageInspection }): VNode {
  const total = data.files.reduce((sum, f) => sum + f.size, 0);
  return html`<p>${data.files.length} entries, ${bytes(total)} in files; root filesystem ${bytes(data.size.rootfsBytes)}, kernel ${bytes(data.size.kernelBytes)}, ${bytes(data.size.storedBytes)} stored.</p>
    <${Table}
      caption="Every file in the image"
      rows=${data.files}
      rowKey=${(f: ImageInspection["files"][number]) => f.path}
      empty="No files."
      columns=${[
        { label: "Path", render: (f: ImageInspection["files"][number]) => html`<span class="mono">${f.path}</span>` },
        { label: "Kind", render: (f: ImageInspection["files"][number]) => f.kind },
        { label: "Role", render: (f: ImageInspection["files"][number]) => f.role },
        { label: "Where", render: (f: ImageInspection["files"][number]) => (f.on === "disk" ? "runtime disk" : "initramfs") },
        { label: "Size", render: (f: ImageInspection["files"][number]) => (f.kind === "file" ? bytes(f.size) : "–"), numeric: true },
      ]}
    />`;
}

/**
 * Running an image grants it what it declared. Each capability is a checkbox, unchecked: the
 * service is created only once every one of them has been acknowledged.
 */
function CreateService({ image }: { image: Image }): VNode {
  const live = useLive();
  const base = image.metadata.labels[IMAGE_NAME_LABEL] ?? image.metadata.name.replace(/-[0-9a-f]{12}$/, "");
  const capabilities = [
    ...image.spec.listen.map((port) => ({ id: `listen-${port}`, text: `Accept connections on port ${port} (forwarded to 127.0.0.1 on its node, and routable by the proxy)` })),
    ...image.spec.egress.map((dest) => ({ id: `egress-${dest}`, text: `Connect out to ${dest}` })),
  ];
  const [name, setName] = useState(base);
  const [replicas, setReplicas] = useState("1");
  const [acked, setAcked] = useState<Record<string, boolean>>({});
  const [errors, setErrors] = useState<{ name?: string; replicas?: string; ack?: string; server?: string }>({});
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const body = { apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image: image.spec.digest, replicas: Number(replicas) } };
    const found = fieldProblems(KIND_SCHEMAS.Service.input, body);
    const problems: typeof errors = {};
    const nameProblem = found.get("/metadata/name");
    if (nameProblem) problems.name = `The name ${nameProblem}.`;
    else if (live.service(name)) problems.name = `A service named ${name} already exists.`;
    const replicasProblem = found.get("/spec/replicas");
    if (replicasProblem) problems.replicas = `Replicas ${replicasProblem}: a whole number from ${REPLICAS.min} to ${REPLICAS.max}.`;
    const missing = capabilities.filter((c) => !acked[c.id]);
    if (missing.length) problems.ack = `Acknowledge ${missing.length === 1 ? "the capability" : `all ${missing.length} capabilities`} this image is granted, or do not run it.`;
    setErrors(problems);
    if (Object.keys(problems).length) return;
    setBusy(true);
    try {
      await api("POST", "/api/v1/services", body);
      navigate(href.service(name));
    } catch (e) {
      setErrors({ server: describeError(e) });
    } finally {
      setBusy(false);
    }
  };

  return html`<form class="create-form" onSubmit=${submit} novalidate>
    <div class="field">
      <label for="new-service-name">Service name</label>
      <input id="new-service-name" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value.trim())} autocomplete="off" spellcheck="false"
        aria-invalid=${errors.name ? "true" : "false"} aria-describedby=${errors.name ? "new-service-name-error" : undefined} />
      ${errors.name ? html`<p class="field-error" id="new-service-name-error">${errors.name}</p>` : null}
    </div>
    <div class="field">
      <label for="new-service-replicas">Replicas</label>
      <input id="new-service-replicas" type="number" min=${REPLICAS.min} max=${REPLICAS.max} step="1" inputmode="numeric" value=${replicas} onInput=${(e: Event) => setReplicas((e.target as HTMLInputElement).value)}
        aria-invalid=${errors.replicas ? "true" : "false"} aria-describedby=${errors.replicas ? "new-service-replicas-error" : undefined} />
      ${errors.replicas ? html`<p class="field-error" id="new-service-replicas-error">${errors.replicas}</p>` : null}
    </div>
    <fieldset class="acks" aria-describedby=${errors.ack ? "ack-error" : undefined}>
      <legend>This image will be allowed to:</legend>
      ${capabilities.length === 0
        ? html`<p class="muted">Nothing: it declares no listen port and no egress, so it runs without any network.</p>`
        : capabilities.map(
            (c) => html`<label class="checkbox" key=${c.id}>
              <input type="checkbox" name="ack" value=${c.id} checked=${acked[c.id] === true} onChange=${(e: Event) => setAcked({ ...acked, [c.id]: (e.target as HTMLInputElement).checked })} />
              ${c.text}
            </label>`,
          )}
      <p class="muted small">Plus ${image.spec.memoryMiB} MiB of memory and ${image.spec.vcpus} vCPU per machine. Nothing else is reachable from inside.</p>
      ${errors.ack ? html`<p class="field-error" id="ack-error" role="alert">${errors.ack}</p>` : null}
    </fieldset>
    ${errors.server ? html`<${ErrorNote}>${errors.server}<//>` : null}
    <button type="submit" class="button primary" disabled=${busy}>${busy ? "Creating…" : "Create service"}</button>
  </form>`;
}
