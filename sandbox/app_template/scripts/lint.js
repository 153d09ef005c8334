"use strict";

// A tiny stand-in for `next lint` that needs no npm packages. It checks the JavaScript and
// TypeScript sources for a handful of ESLint core rules and reports each problem as
//   path:line:col  error  message  rule
// followed by an ESLint-style summary. Exits 1 when any error was found.

const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..");
const DIRS = ["src", "tests", "scripts", "e2e"];
const SKIP = new Set(["node_modules", "test-results", "playwright-report", ".git"]);
const EXTENSIONS = new Set([".js", ".cjs", ".mjs", ".ts", ".tsx"]);

// Patterns are built from strings so that this file does not trip its own rules.
const defineRule = (id, source, message) => ({ id, pattern: new RegExp(source, "g"), message });
const RULES = [
  defineRule("no-debugger", "\\bdebugger\\b", "Unexpected 'debugger' statement."),
  defineRule("no-var", "\\bvar\\s+[A-Za-z_$]", "Unexpected var, use let or const instead."),
  defineRule("eqeqeq", "[^=!<>]==(?!=)|!=(?!=)", "Expected '===' and instead saw '=='."),
  defineRule("no-trailing-spaces", "[ \\t]+$", "Trailing spaces not allowed."),
];

function sourceFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      found.push(...sourceFiles(full));
    } else if (EXTENSIONS.has(path.extname(entry.name))) {
      found.push(full);
    }
  }
  return found;
}

// Blank out string literals and line comments so rules only see code (columns are kept).
function codeOnly(line) {
  const blank = (text) => " ".repeat(text.length);
  const withoutStrings = line.replace(/(["'`])(?:\\.|(?!\1).)*\1/g, blank);
  const comment = withoutStrings.indexOf("//");
  return comment === -1 ? withoutStrings : withoutStrings.slice(0, comment);
}

function lintFile(file) {
  const problems = [];
  const lines = fs.readFileSync(file, "utf8").split("\n");
  lines.forEach((raw, index) => {
    for (const rule of RULES) {
      const text = rule.id === "no-trailing-spaces" ? raw : codeOnly(raw);
      rule.pattern.lastIndex = 0;
      let match;
      while ((match = rule.pattern.exec(text)) !== null) {
        const offset = rule.id === "eqeqeq" && match[0].length === 3 ? 1 : 0;
        problems.push({ line: index + 1, column: match.index + offset + 1, rule });
        if (match[0].length === 0) rule.pattern.lastIndex += 1;
      }
    }
  });
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

function main() {
  const files = DIRS.flatMap((dir) => sourceFiles(path.join(ROOT, dir)));
  for (const name of fs.readdirSync(ROOT)) {
    if (/\.config\.(js|ts|mjs|cjs)$/.test(name)) files.push(path.join(ROOT, name));
  }
  let errors = 0;
  for (const file of files.sort()) {
    const relative = path.relative(ROOT, file).split(path.sep).join("/");
    for (const problem of lintFile(file)) {
      errors += 1;
      console.log(
        `${relative}:${problem.line}:${problem.column}  error  ${problem.rule.message}  ${problem.rule.id}`,
      );
    }
  }
  if (errors > 0) {
    console.log(`\n\u2716 ${errors} problem${errors === 1 ? "" : "s"} (${errors} error${errors === 1 ? "" : "s"}, 0 warnings)`);
    process.exit(1);
  }
}

main();
