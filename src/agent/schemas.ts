import { z } from 'zod';
import { controlCharacterProblem } from '../host/paths.js';

/**
 * The API's shapes, as zod schemas: they validate requests, type the
 * handlers and become the OpenAPI document (/openapi.json).
 */

export const Uuid = z
  .string()
  .regex(
    /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
    'not a UUID',
  )
  .transform((s) => s.toLowerCase())
  .describe('device UUID (RFC 4122 text form)');

/**
 * No control character (C0, DEL, C1), invisible formatting character or lone
 * surrogate, by the host library's own rule (src/host/paths.ts), which the
 * CLI applies and which makes a definition file holding one invalid. The
 * issue carries the library's code, so the API answers `control-character`
 * as the CLI does (errors.ts reads it).
 */
const noControlCharacters = (what: string) =>
  [
    (s: string): boolean => controlCharacterProblem(s, what) === undefined,
    { message: 'no control characters', params: { code: 'control-character' } },
  ] as const;
/** Text that is valid Unicode (no lone surrogate, which no file name can hold). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed = (s: string): boolean => !LONE_SURROGATE.test(s);

/** A sysfs name: one path component, printable, bounded (checked again by src/host/paths.ts). */
export const SysfsName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\0\s]+$/, 'one path component without spaces')
  .refine(...noControlCharacters('name'))
  .refine(wellFormed, 'not valid Unicode')
  .refine((s) => s !== '.' && s !== '..', 'not . or ..');

export const ParentParams = z.object({ parent: SysfsName });
export const TypeParams = z.object({ parent: SysfsName, type: SysfsName });
export const DeviceParams = z.object({ uuid: Uuid });

export const TypeInfo = z.object({
  id: z.string().describe('type directory name, e.g. "mdpy-hd"'),
  name: z.string().optional().describe("the type's `name` attribute"),
  description: z.string().optional(),
  deviceApi: z.string(),
  availableInstances: z.number().int(),
  activeDevices: z.number().int().describe('active devices of this type on this parent'),
  aggregation: z
    .string()
    .optional()
    .describe(
      "the type's `aggregation` attribute when it supports aggregation (the most instances one device may aggregate)",
    ),
});

export const ParentInfo = z.object({
  name: z.string(),
  types: z.array(TypeInfo),
});

export const Attribute = z.object({
  name: z
    .string()
    .min(1)
    .max(4096)
    .refine(...noControlCharacters('attribute name'))
    .refine(wellFormed, 'not valid Unicode')
    .refine(
      (s) => s.split('/').every((c) => c !== '' && c !== '.' && c !== '..'),
      'a path inside the device directory: no leading /, no empty, . or .. components',
    )
    .describe('a file of the device directory, relative ("mdev/aggregation/value")'),
  value: z
    .string()
    .max(4096)
    .refine(...noControlCharacters('attribute value'))
    .refine(wellFormed, 'not valid Unicode'),
});

export const StartMode = z.enum(['auto', 'manual']);

export const Aggregation = z.object({
  value: z.number().int().describe("instances' worth the device holds (mdev/aggregation/value)"),
  max: z
    .number()
    .int()
    .optional()
    .describe('the most one device of its type may hold (mdev/aggregation/max)'),
});

export const Device = z.object({
  uuid: z.string(),
  parent: z.string(),
  type: z.string(),
  active: z.boolean(),
  defined: z.boolean(),
  start: StartMode.optional().describe('start mode of the definition'),
  attrs: z.array(Attribute).describe('attributes of the definition, in the order they are written'),
  aggregation: Aggregation.optional().describe(
    'in listings, for an active device whose type aggregates: its mdev/aggregation/{value,max}, read when the list was rebuilt',
  ),
});

export const SkippedDefinition = z.object({
  parent: z.string(),
  uuid: z.string().describe("the file's name"),
  reason: z.string().describe('why it is not a definition (the file is never quoted)'),
});

export const DeviceList = z.object({
  total: z.number().int().describe('devices matching the filters, over all pages'),
  devices: z.array(Device),
  next: z.string().optional().describe('cursor of the next page; absent on the last'),
  skipped: z
    .array(SkippedDefinition)
    .describe(
      'definition files left out because they cannot be read as definitions (empty, not JSON, not a definition); DELETE /devices/{uuid}/definition removes one',
    ),
});

export const DeviceListQuery = z.object({
  parent: SysfsName.optional(),
  type: SysfsName.optional(),
  state: z.enum(['active', 'defined', 'all']).default('all'),
  limit: z.coerce.number().int().min(1).max(20000).default(100),
  cursor: z.string().max(64).optional().describe('`next` of the previous page'),
});

// ---- vfio-ap (routes/ap.ts) ------------------------------------------------

export const ApQueue = z.object({
  adapter: z.number().int(),
  domain: z.number().int(),
  /** The host keeps it (apmask and aqmask bits both set). */
  host: z.boolean(),
  /** The matrix device that holds it. */
  owner: z.string().optional(),
});

export const ApMatrixDevice = z.object({
  uuid: z.string(),
  adapters: z.array(z.number().int()),
  domains: z.array(z.number().int()),
  controlDomains: z.array(z.number().int()),
  guestQueues: z.array(z.string()).describe('queues the guest sees (guest_matrix), "aa.dddd"'),
});

export const ApMatrix = z.object({
  maxAdapterId: z.number().int(),
  maxDomainId: z.number().int(),
  adapters: z.array(z.number().int()).describe('adapters of the AP configuration'),
  adapterTypes: z.record(z.string(), z.string()),
  domains: z.array(z.number().int()).describe('usage domains of the AP configuration'),
  queues: z.array(ApQueue).describe('every adapter × domain cell of the grid'),
  devices: z.array(ApMatrixDevice),
  vfioApLoaded: z.boolean(),
});

// ---- errors and health -------------------------------------------------------

export const ErrorBody = z.object({
  error: z.object({
    code: z
      .string()
      .describe(
        'stable code: the kernel\'s errno name ("EBUSY") or a documented one ("queue-in-use"); see docs/errors.md',
      ),
    errno: z.string().describe('errno name, e.g. "EEXIST"'),
    errnoNumber: z.number().int(),
    strerror: z.string(),
    message: z.string(),
    operation: z.string().optional(),
    path: z.string().optional(),
    context: z.record(z.string(), z.string()).optional(),
    issues: z.unknown().optional(),
  }),
});

export const Health = z.object({
  status: z.literal('ok'),
  host: z.string(),
  mode: z.enum(['lab', 'host']),
});
