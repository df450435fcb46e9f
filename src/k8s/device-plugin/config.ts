import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { K8sError } from '../errors.js';
import type { PluginDevice } from './devices.js';
import { defaultResourceName, resourceNameProblem } from './resource-name.js';

/**
 * The device plugin's configuration file (`--config FILE`, YAML):
 *
 *     version: 1
 *     resources:                          # omitted: every mdev type with devices,
 *       - name: nvidia.com/GRID_M60_2Q    #   as mdevkit.io/<type id>
 *         mdevTypes: [nvidia-16]          # type directory names
 *       - name: nvidia.com/GRID_M60_0B
 *         mdevNames: ["GRID M60-0B"]      # type names, as KubeVirt's mdevNameSelector
 *       - name: nvidia.com/L40S-12Q
 *         vgpuTypes: [L40S-12Q]           # NVIDIA vendor-VFIO vGPUs (VFs)
 *     nodeConfig:                         # node configuration from a label
 *       file: host.yaml                   # the desired-state file (relative to this one)
 *       label: mdevkit.io/config          # the default
 *     pollIntervalMs: 50                  # sysfs look-ups where no events come
 *
 * A device belongs to the first resource that selects it. Resource names
 * are checked as kubelet checks them, so a bad name fails here with its
 * reason rather than at registration.
 */

export const DEFAULT_CONFIG_LABEL = 'mdevkit.io/config';
export const DEFAULT_POLL_INTERVAL_MS = 50;

export interface ResourceSpec {
  readonly name: string;
  /** Which devices it advertises. */
  readonly selects: (d: PluginDevice) => boolean;
  /** Where it comes from, for messages ("resources[1]" or "default for nvidia-16"). */
  readonly origin: string;
}

export interface NodeConfigSettings {
  /** The desired-state file: named configurations, one selected per node by label. */
  readonly file: string;
  /** The node label that names the configuration. */
  readonly label: string;
}

export interface PluginConfig {
  /** Configured resources; empty: every type with devices under its default name. */
  readonly resources: readonly ResourceSpec[];
  readonly nodeConfig: NodeConfigSettings | undefined;
  readonly pollIntervalMs: number;
}

const resourceName = z.string().superRefine((v, ctx) => {
  const why = resourceNameProblem(v);
  if (why !== undefined)
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a resource name: ${why}` });
});

const names = z.array(z.string().min(1).max(255)).min(1);

const resourceSchema = z
  .strictObject({
    name: resourceName,
    mdevTypes: names.optional(),
    mdevNames: names.optional(),
    vgpuTypes: names.optional(),
  })
  .refine(
    (r) => r.mdevTypes !== undefined || r.mdevNames !== undefined || r.vgpuTypes !== undefined,
    { message: 'a resource selects devices by mdevTypes, mdevNames or vgpuTypes' },
  );

const labelKey = z
  .string()
  .regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    'a label key such as mdevkit.io/config',
  );

const configSchema = z.strictObject({
  version: z.literal(1),
  resources: z.array(resourceSchema).default([]),
  nodeConfig: z
    .strictObject({
      file: z.string().min(1),
      label: labelKey.default(DEFAULT_CONFIG_LABEL),
    })
    .optional(),
  pollIntervalMs: z.number().int().min(5).max(60_000).default(DEFAULT_POLL_INTERVAL_MS),
});

/** KubeVirt compares type names with spaces as "_" on both sides. */
const kubevirtName = (s: string): string => s.trim().replace(/ /g, '_');

function selector(r: z.infer<typeof resourceSchema>): (d: PluginDevice) => boolean {
  const types = new Set(r.mdevTypes ?? []);
  const typeNames = new Set((r.mdevNames ?? []).map(kubevirtName));
  const vgpu = new Set(r.vgpuTypes ?? []);
  return (d) =>
    d.kind === 'mdev'
      ? types.has(d.type) || (d.typeName !== undefined && typeNames.has(kubevirtName(d.typeName)))
      : vgpu.has(d.type) || (d.typeName !== undefined && vgpu.has(d.typeName));
}

/** The configuration without a file: every type under its default name, no node configuration. */
export const DEFAULT_PLUGIN_CONFIG: PluginConfig = {
  resources: [],
  nodeConfig: undefined,
  pollIntervalMs: DEFAULT_POLL_INTERVAL_MS,
};

/** Parse a configuration; `file` names it in errors and anchors relative paths. */
export function parsePluginConfig(text: string, file: string): PluginConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new K8sError(
      'invalid-plugin-config',
      `${file}: not YAML: ${(err as Error).message}`,
      { file },
      { cause: err },
    );
  }
  const r = configSchema.safeParse(doc ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const at = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`));
    const field = at.join('').replace(/^\./, '');
    throw new K8sError('invalid-plugin-config', `${file}: ${field || '(top)'}: ${issue.message}`, {
      file,
      field,
    });
  }
  const seen = new Set<string>();
  for (const [i, res] of r.data.resources.entries()) {
    if (seen.has(res.name)) {
      throw new K8sError(
        'invalid-plugin-config',
        `${file}: resources[${i}].name: ${res.name} is configured twice`,
        { file, field: `resources[${i}].name` },
      );
    }
    seen.add(res.name);
  }
  return {
    resources: r.data.resources.map((res, i) => ({
      name: res.name,
      selects: selector(res),
      origin: `resources[${i}]`,
    })),
    nodeConfig:
      r.data.nodeConfig === undefined
        ? undefined
        : {
            file: nodePath.resolve(nodePath.dirname(file), r.data.nodeConfig.file),
            label: r.data.nodeConfig.label,
          },
    pollIntervalMs: r.data.pollIntervalMs,
  };
}

export function loadPluginConfig(file: string): PluginConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new K8sError(
      'invalid-plugin-config',
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { file },
      { cause: err },
    );
  }
  return parsePluginConfig(text, nodePath.resolve(file));
}

/**
 * The resources to advertise for `devices`: the configured ones (always,
 * even without devices, so the resource exists with capacity 0), or with
 * none configured one per type that has devices, under its default name.
 */
export function resourcesFor(
  config: PluginConfig,
  devices: readonly PluginDevice[],
): readonly ResourceSpec[] {
  if (config.resources.length > 0) return config.resources;
  const byName = new Map<string, ResourceSpec>();
  for (const d of devices) {
    const name = defaultResourceName(d.type);
    if (!byName.has(name)) {
      byName.set(name, {
        name,
        selects: (x) => defaultResourceName(x.type) === name,
        origin: `default for ${d.type}`,
      });
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}
