/**
 * Lists the functions over a line limit (default 80) in the given directories (default `src`,
 * `agent` and `scripts`), tests excluded: `file:line name lines`, longest first, and whether
 * the comment directly above gives a reason (`// long:` or `long because` in its TSDoc).
 *
 * Usage: `npx tsx scripts/long-functions.ts [--max 80] [dir…]`
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

/** A name for a function node: its own, its variable's or property's, else `(anonymous)`. */
function nameOf(node: ts.Node, source: ts.SourceFile): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name) return named.name.getText(source);
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) return parent.name.getText(source);
  return "(anonymous)";
}

/** True when the comment just above the function's statement gives a reason for its length. */
function hasReason(node: ts.Node, source: ts.SourceFile): boolean {
  let statement: ts.Node = node;
  while (statement.parent && !ts.isSourceFile(statement.parent) && !ts.isBlock(statement.parent)) {
    if (ts.isClassDeclaration(statement.parent) || ts.isObjectLiteralExpression(statement.parent)) break;
    statement = statement.parent;
  }
  const text = source.getFullText();
  const comments = ts.getLeadingCommentRanges(text, statement.getFullStart()) ?? [];
  return comments.some((c) => /long because|\/\/ long:/i.test(text.slice(c.pos, c.end)));
}

const args = process.argv.slice(2);
const maxAt = args.indexOf("--max");
const max = maxAt >= 0 ? Number(args.splice(maxAt, 2)[1]) : 80;
const dirs = args.length > 0 ? args : ["src", "agent", "scripts"];
const found: { where: string; name: string; lines: number; reason: boolean }[] = [];
for (const file of dirs.flatMap(filesUnder)) {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      if (lines > max) {
        const name = nameOf(node, source);
        found.push({ where: `${file}:${first + 1}`, name, lines, reason: hasReason(node, source) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}
found.sort((a, b) => b.lines - a.lines);
for (const f of found) console.log(`${f.where} ${f.name} ${f.lines}${f.reason ? " (reason given)" : ""}`);
console.log(
  `${found.length} function(s) over ${max} lines, ${found.filter((f) => !f.reason).length} without a reason`,
);
