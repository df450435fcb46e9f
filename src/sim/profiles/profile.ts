import { z } from 'zod';
import { readFileLimited } from '../../common/read-limited.js';
import { DRIVER_MODULES, driverModule } from '../drivers/registry.js';
import labProfile from './lab.json' with { type: 'json' };
import samplesProfile from './samples.json' with { type: 'json' };

/**
 * Host profiles: a declarative emulated machine — which device models, with
 * which options. Built-in profiles ship in this folder; `--profile` also
 * takes a path to a JSON file of the same shape.
 */

const deviceEntry = z.strictObject({
  driver: z.string().min(1),
  /** Free text shown in summaries. */
  comment: z.string().optional(),
  options: z.record(z.string(), z.unknown()).optional(),
});

const profileSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  devices: z.array(deviceEntry),
});

export interface ProfileDevice {
  readonly driver: string;
  readonly comment?: string;
  /** Options already checked against the driver module's schema. */
  readonly options: unknown;
}

export interface HostProfile {
  readonly name: string;
  readonly description: string;
  /** Where it came from: "built-in" or a file path. */
  readonly source: string;
  readonly devices: readonly ProfileDevice[];
}

/** The most a profile file may hold. */
const MAX_PROFILE_BYTES = 1 << 20;

export class ProfileError extends Error {
  override readonly name = 'ProfileError';
}

const BUILT_IN: Record<string, unknown> = { lab: labProfile, samples: samplesProfile };

export const DEFAULT_PROFILE = 'lab';

export function builtInProfileNames(): string[] {
  return Object.keys(BUILT_IN);
}

/** A built-in profile by name, or a JSON file by path. */
export function loadProfile(nameOrPath: string = DEFAULT_PROFILE): HostProfile {
  const builtIn = BUILT_IN[nameOrPath];
  if (builtIn !== undefined) return parseProfile(builtIn, `built-in profile '${nameOrPath}'`);
  if (!nameOrPath.includes('/') && !nameOrPath.endsWith('.json')) {
    throw new ProfileError(
      `unknown profile '${nameOrPath}' (built-in: ${builtInProfileNames().join(', ')}; or give a path to a .json file)`,
    );
  }
  let text: string;
  try {
    // A profile is a few kilobytes; /dev/zero must not be read forever.
    text = readFileLimited(nameOrPath, MAX_PROFILE_BYTES);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why =
      code === 'EFBIG'
        ? `larger than ${MAX_PROFILE_BYTES >> 20} MiB`
        : typeof code === 'string'
          ? code
          : (err as Error).message;
    throw new ProfileError(`${nameOrPath}: cannot read profile: ${why}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Never V8's message: it quotes the file, and the path may name any file.
    throw new ProfileError(`${nameOrPath}: not valid JSON`);
  }
  return parseProfile(json, nameOrPath);
}

/** Validate a profile object; errors name the source and the field path. */
export function parseProfile(json: unknown, source: string): HostProfile {
  const parsed = profileSchema.safeParse(json);
  if (!parsed.success) throw new ProfileError(`${source}: ${describeIssues(parsed.error)}`);
  const devices = parsed.data.devices.map((d, i): ProfileDevice => {
    const mod = driverModule(d.driver);
    if (mod === undefined) {
      throw new ProfileError(
        `${source}: devices[${i}].driver: unknown driver '${d.driver}' (known: ${DRIVER_MODULES.map((m) => m.name).join(', ')})`,
      );
    }
    const opts = mod.options.safeParse(d.options ?? {});
    if (!opts.success) {
      throw new ProfileError(`${source}: ${describeIssues(opts.error, `devices[${i}].options`)}`);
    }
    return d.comment === undefined
      ? { driver: d.driver, options: opts.data }
      : { driver: d.driver, comment: d.comment, options: opts.data };
  });
  return {
    name: parsed.data.name,
    description: parsed.data.description ?? '',
    source,
    devices,
  };
}

function describeIssues(err: z.ZodError, prefix = ''): string {
  return err.issues
    .map((issue) => {
      let path = prefix;
      for (const seg of issue.path) {
        path +=
          typeof seg === 'number' ? `[${seg}]` : path === '' ? String(seg) : `.${String(seg)}`;
      }
      return `${path === '' ? '(top level)' : path}: ${issue.message}`;
    })
    .join('; ');
}
