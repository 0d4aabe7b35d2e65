import path from "node:path";
import { isAlias, type Document, type LineCounter } from "yaml";
import type { Problem } from "./problems.ts";

/** A YAML node as the validators see it; aliases are already resolved. */
export type YNode = unknown;

/** Shared state while validating one manifest: where it lives, and the problems found so far. */
export class Ctx {
  readonly problems: Problem[] = [];
  readonly dir: string;

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {
    this.dir = path.resolve(path.dirname(file));
  }

  /** Records a problem located at `node` (or at the top of the file when there is no node). */
  report(node: YNode, at: string, message: string, hint?: string): void {
    const offset = rangeOf(node)?.[0] ?? 0;
    this.reportAt(offset, at, message, hint);
  }

  reportAt(offset: number, at: string, message: string, hint?: string): void {
    const { line, col } = this.lines.linePos(offset);
    const problem: Problem = { file: this.file, line, column: col, path: at, message };
    if (hint !== undefined) problem.hint = hint;
    this.problems.push(problem);
  }

  lineOf(node: YNode): number {
    return this.lines.linePos(rangeOf(node)?.[0] ?? 0).line;
  }

  /** Follows `*alias` references so validators never see them; reports anchors that do not exist. */
  deref(node: YNode, at: string): YNode {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.doc);
    if (target === undefined) {
      this.report(node, at, `alias *${node.source} refers to no anchor`,
        `if you meant the text "*${node.source}", put it in quotes; otherwise define &${node.source} earlier`);
    }
    return target;
  }
}

function rangeOf(node: YNode): readonly number[] | undefined {
  if (typeof node !== "object" || node === null || !("range" in node)) return undefined;
  const range = (node as { range?: unknown }).range;
  return Array.isArray(range) ? range : undefined;
}
