/** Result of parsing one human-written value; failures carry a message and a suggested fix. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string; hint: string };
