import { isIP } from "node:net";

/**
 * The values Pith writes into HAProxy's runtime API and map file. Commands are text separated by
 * `;` and newlines, and a map line is `key value`: a space, `;`, or newline inside a value would
 * be another command or entry. So nothing goes in that does not pass one of these strict grammars.
 */

/** RFC 1123 host names, lower case (the map's keys are lower-cased Host headers). */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export const isHostName = (value: string): boolean => HOST_NAME.test(value);

/** Pith's own backend names (`pith_b<N>`) and slot keys (`pith_b<N>/s<M>`). */
export const isBackendName = (value: string): boolean => /^pith_b[0-9]{1,6}$/.test(value);
export const isSlotKey = (value: string): boolean => /^pith_b[0-9]{1,6}\/s[0-9]{1,3}$/.test(value);

/** A literal IP (no brackets) and an integer port 1-65535. */
export const isEndpoint = (address: string, port: number): boolean => isIP(address) !== 0 && Number.isInteger(port) && port >= 1 && port <= 65535;
