import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is broker/server/test_build.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function mtimeMs(path: string): number {
  return existsSync(path) ? statSync(path).mtimeMs : 0;
}

function newestSourceMs(root: string): number {
  let newest = mtimeMs(join(root, "tsconfig.json"));
  const walk = (dir: string, depth: number): void => {
    if (depth > 8) return;
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, d.name);
      if (d.isDirectory()) walk(path, depth + 1);
      else if (d.name.endsWith(".ts") && !d.name.endsWith(".test.ts")) newest = Math.max(newest, mtimeMs(path));
    }
  };
  for (const top of ["raft", "storage", "broker", "chaos", "bench"]) if (existsSync(join(root, top))) walk(join(root, top), 0);
  return newest;
}

/**
 * Tests that start real replica processes run them from dist/: compile first when a source is
 * newer than dist/broker/cli/main.js. Used by the broker's real-process tests and the bench smokes.
 */
export function ensureBuilt(): void {
  if (newestSourceMs(repoRoot) > mtimeMs(join(repoRoot, "dist/broker/cli/main.js"))) {
    execFileSync(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: repoRoot, stdio: "inherit" });
  }
}
