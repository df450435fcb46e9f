import { createHash } from 'node:crypto';

/**
 * Names around a resource: the extended resource name kubelet accepts,
 * the default name of an mdev type, the environment variables KubeVirt's
 * virt-launcher reads, and the plugin's socket file name.
 */

/** The domain of the default resource names. */
export const DEFAULT_RESOURCE_DOMAIN = 'mdevkit.io';

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/**
 * Why `name` is not an extended resource name kubelet would take from a
 * device plugin, or undefined when it is one. The rules are the API
 * server's (IsExtendedResourceName): `domain/name`, the domain not
 * kubernetes.io and the whole not starting with `requests.`, and
 * `requests.<name>` a qualified name — a DNS subdomain of at most 253
 * characters, then a name of at most 63 from [A-Za-z0-9_.-] that starts
 * and ends alphanumeric.
 */
export function resourceNameProblem(name: string): string | undefined {
  if (!name.includes('/')) return 'it has no domain (vendor-domain/resource)';
  if (name.includes('kubernetes.io/')) return 'the kubernetes.io domain is reserved for Kubernetes';
  if (name.startsWith('requests.')) return 'names starting with "requests." are reserved for quota';
  const parts = `requests.${name}`.split('/');
  if (parts.length !== 2) return 'it has more than one "/"';
  const [prefix, base] = parts as [string, string];
  if (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) {
    return 'its domain is not a DNS subdomain (lower-case letters, digits, "-" and ".")';
  }
  if (base.length === 0 || base.length > 63 || !QUALIFIED_NAME.test(base)) {
    return 'the part after "/" is not 1-63 letters, digits, "-", "_" or "." starting and ending with a letter or digit';
  }
  return undefined;
}

/**
 * The default resource name of an mdev type: `mdevkit.io/<type id>`, the
 * type's directory name (`nvidia-16`, `i915-GVTg_V5_4`, `mtty-2`), with
 * any character a resource name cannot hold turned into `_`. Type ids are
 * unique on a host and the same on every host with the same driver, which
 * type names ("GRID M60-2Q") are not always; a configuration maps them to
 * vendor names such as `nvidia.com/GRID_M60_2Q`.
 */
export function defaultResourceName(typeId: string): string {
  let base = typeId.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (base.length > 63) base = base.slice(0, 54) + '-' + shortHash(typeId);
  if (base === '') base = `type-${shortHash(typeId)}`;
  return `${DEFAULT_RESOURCE_DOMAIN}/${base}`;
}

/**
 * The environment variable KubeVirt's virt-launcher reads a resource's
 * devices from: PREFIX_<NAME>, the name upper-cased with "/" and "."
 * turned into "_" (KubeVirt's ResourceNameToEnvVar).
 */
export function resourceEnvName(prefix: string, resourceName: string): string {
  return `${prefix}_${resourceName.toUpperCase().replace(/[/.]/g, '_')}`;
}

/** Where KubeVirt looks for mdev UUIDs (comma-joined). */
export const MDEV_ENV_PREFIX = 'MDEV_PCI_RESOURCE';
/** Where KubeVirt looks for PCI addresses (comma-joined): VF vGPUs. */
export const PCI_ENV_PREFIX = 'PCI_RESOURCE';

/**
 * The plugin's socket file name in the device plugin directory:
 * `mdevkit-<resource name with "/" as "_">.sock`, shortened with a hash
 * when long, since a socket's whole path must fit in 107 bytes.
 */
export function endpointName(resourceName: string): string {
  const safe = resourceName.replace(/[^A-Za-z0-9_.-]/g, '_');
  const base = safe.length <= 48 ? safe : `${safe.slice(0, 39)}-${shortHash(resourceName)}`;
  return `mdevkit-${base}.sock`;
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}
