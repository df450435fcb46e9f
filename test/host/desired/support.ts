import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyHost, planHost, type ApplyHostOptions } from '../../../src/host/desired/engine.js';
import { parseConfigText, type ConfigFile } from '../../../src/host/desired/config.js';
import type { Plan, PlanAction } from '../../../src/host/desired/plan.js';
import { environmentAt, type Environment } from '../../../src/host/environment.js';
import type { SysfsPort } from '../../../src/port/sysfs-port.js';
import { Lab } from '../../../src/sim/lab.js';
import { tmpDir } from '../../support/tmp.js';

/** A lab (default profile unless given) and an environment on it with an empty config dir. */
export function labHost(
  lab: Lab = Lab.fromProfile('lab'),
  port?: SysfsPort,
): { lab: Lab; env: Environment; dir: string } {
  const dir = tmpDir('mdevkit-desired-');
  fs.mkdirSync(path.join(dir, 'etc', 'mdevctl.d'), { recursive: true });
  return { lab, env: environmentAt(dir, port ?? lab.port), dir };
}

/** A configuration file from YAML text (written to disk, so messages name a real file). */
export function configFile(yaml: string, name = 'host.yaml'): ConfigFile {
  const dir = tmpDir('mdevkit-desired-config-');
  const file = path.join(dir, name);
  fs.writeFileSync(file, yaml);
  return parseConfigText(yaml, file);
}

/** Who holds each device open, from the lab (the tests play the VM). */
export function labInUse(lab: Lab): (uuid: string) => string | undefined {
  return (uuid) => ((lab.core.device(uuid)?.openCount ?? 0) > 0 ? 'open by a test VM' : undefined);
}

export function plan(
  env: Environment,
  file: ConfigFile,
  lab: Lab,
  opts: ApplyHostOptions = {},
): Plan {
  return planHost(env, file, { inUse: labInUse(lab), ...opts }).plan;
}

export function apply(env: Environment, file: ConfigFile, lab: Lab, opts: ApplyHostOptions = {}) {
  return applyHost(env, file, { inUse: labInUse(lab), ...opts });
}

export function count(p: Plan, action: PlanAction): number {
  return p.counts[action];
}

/** Active devices of the lab as "parent type" -> count. */
export function activeByType(lab: Lab): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of lab.core.devices.values()) {
    const k = `${d.parent.name} ${d.type.id}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

/** Every definition file under the config dir: path -> content. */
export function definitions(env: Environment): Map<string, string> {
  const out = new Map<string, string>();
  for (const parent of fs.readdirSync(env.configDir)) {
    const dir = path.join(env.configDir, parent);
    if (!fs.statSync(dir).isDirectory() || parent === 'scripts.d') continue;
    for (const f of fs.readdirSync(dir))
      out.set(`${parent}/${f}`, fs.readFileSync(path.join(dir, f), 'utf8'));
  }
  return out;
}
