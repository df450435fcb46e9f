import { spawnSync, type SpawnSyncOptions } from 'node:child_process';

export const MDEVKIT_BIN = new URL('../../bin/mdevkit', import.meta.url).pathname;

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run bin/mdevkit (the built bundle) as a user would. */
export function runMdevkit(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(process.execPath, [MDEVKIT_BIN, ...args], { encoding: 'utf8', ...opts });
  return { status: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
