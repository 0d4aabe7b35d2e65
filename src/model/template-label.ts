/** The label carrying the hash of the template a machine was made from (machine-template.ts). */
export const TEMPLATE_HASH_LABEL = "pith.dev/template-hash";

/**
 * Whether a machine is of the service's current template (its hash label). Machines made before
 * templates were hashed carry no label: they count as current while their image is, so an
 * upgrade of Pith rolls nothing by itself. No node: imports, since the GUI reads it too.
 */
export function isOfTemplate(machine: { metadata: { labels: Record<string, string> }; spec: { image: string } }, hash: string | undefined, digest: string | undefined): boolean {
  const label = machine.metadata.labels[TEMPLATE_HASH_LABEL];
  return label === undefined ? machine.spec.image === digest : label === hash;
}
