/** The API's object types, shared with the server (type-only imports: nothing of the server is bundled). */
export type { Image, Machine, MachinePhase, PithEvent, PithNode, Service, ServiceRevision, ServiceSpec, Volume } from "../../model/kinds.ts";
export type { Kind, Resource } from "../../model/resource.ts";
export type { ImageInspection } from "../../image/inspect.ts";
export { MACHINE_PHASES } from "../../model/kinds.ts";
export { API_VERSION, PLURALS } from "../../model/resource.ts";
export { IMAGE_NAME_LABEL, SERVICE_LABEL } from "../../model/labels.ts";
export { desiredMachines, isAutoscaled, serviceOf } from "../../model/service-rules.ts";
export { declarationOf } from "../../model/declaration.ts";
