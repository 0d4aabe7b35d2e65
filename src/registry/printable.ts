/**
 * Text a registry sent, made safe to show: at most `max` characters, control characters
 * (a terminal escape, a line break that forges a log line) replaced by `?`.
 */
export function printable(text: string, max = 100): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, "?");
}
