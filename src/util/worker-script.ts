import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Resolves the compiled JavaScript file of a worker module that sits next to
 * `callerUrl`. Worker threads cannot load TypeScript, so when the caller runs
 * from src/ (under vitest) the worker comes from the build in dist/, which
 * `npm test` produces before the tests start.
 */
export function resolveWorkerScript(callerUrl: string, workerBaseName: string): string {
  const callerPath = fileURLToPath(callerUrl);
  const sibling = callerPath.replace(/[^/]+$/, `${workerBaseName}.js`);
  if (!callerPath.endsWith('.ts')) return sibling;

  const built = sibling.replace(/\/src\//, '/dist/');
  if (!existsSync(built)) {
    throw new Error(`worker script ${built} is missing: run "npm run build" before running from source`);
  }
  return built;
}
