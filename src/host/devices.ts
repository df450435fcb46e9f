/**
 * Host library API — the semantic mdev operations of mdevctl, over an
 * `Environment` (src/host/environment.ts: sysfs port + config dir + callout
 * dirs). The CLI (src/ctl/mdevctl), the agent and the libvirt integration
 * all call these; nothing here formats output or touches process.stdout.
 *
 *   selfCheck(env)                          required dirs exist (else MdevError)
 *   listActiveDevices(env, filter, hooks)   Map<parent, MdevDevice[]> — as `mdevctl list`
 *   listDefinedDevices(env, filter, hooks)  Map<parent, MdevDevice[]> — as `mdevctl list -d`
 *   listTypes(env, parent?)                 Map<parent, MdevTypeEntry[]> — as `mdevctl types`
 *   defineDevice(env, request, hooks)       -> MdevDevice (stores <configDir>/<parent>/<uuid>)
 *   undefineDevice(env, uuid, parent?, hooks)  -> MdevDevice[] removed
 *   modifyDevice(env, request, hooks)       -> MdevDevice (the new definition)
 *   modifyLive(env, request, hooks)         -> MdevDevice (running device changed via its callout)
 *   startDevice(env, request, hooks)        -> MdevDevice (created, attrs written in order)
 *   stopDevice(env, uuid, hooks)
 *   startParentDevices(env, parent, hooks)  -> StartOutcome[] (autostart of start=auto definitions)
 *
 * Maps are sorted by parent name, device lists by UUID (as mdevctl's
 * BTreeMap and sort). Failures are `MdevError` (src/host/errors.ts) with a
 * stable `code` (the kernel's errno name, or a documented library code such
 * as `not-defined`), its `errno`, the objects involved in `context`, and an
 * optional `cause` chain (the CLI prints it as mdevctl's "Caused by:"); a
 * failed attribute write during start is an `AttributeWriteError` naming the
 * device, parent, type, attribute file, with the write's errno as its code. The decision rules (which
 * option wins, which errors) are mdevctl 1.2.0's so the CLI stays a drop-in;
 * where 1.2.0 panics this library throws a clear MdevError instead.
 *
 * `hooks.warn` receives what mdevctl logs at WARN level (e.g. a config file
 * whose name is not a UUID); `hooks.calloutStderr` what callout scripts say.
 * All calls are synchronous, like the port and like mdevctl itself.
 *
 * This file is the library's one import path; the code lives in
 * src/host/devices/ along its seams: errors.ts, types.ts (what the calls
 * take and return), listing.ts, definitions.ts, lifecycle.ts (start, stop,
 * autostart), self-check.ts, and the shared internals draft.ts (the device
 * record and how it is filled), args.ts (request names) and sysfs.ts.
 */
export { indexTypeDevices, probeActive, type TypeDevicesIndex } from './sysfs-model.js';
export type { MdevAttribute, MdevConfig, StartMode } from './config-store.js';
export type {
  DeviceFilter,
  HostHooks,
  JsonSource,
  MdevDevice,
  MdevTypeEntry,
} from './devices/types.js';
export { AttributeWriteError, describeError } from './devices/errors.js';
export {
  LIBRARY_ERRORS,
  MdevError,
  codeOf,
  errorRecord,
  type ErrorContext,
  type ErrorRecord,
  type HostErrorCode,
  type LibraryErrorCode,
} from './errors.js';
export { selfCheck } from './devices/self-check.js';
export {
  getDefinedDevice,
  listActiveDevices,
  listDefinedDevices,
  listTypes,
} from './devices/listing.js';
export {
  defineDevice,
  jsonFileSource,
  modifyDevice,
  modifyLive,
  undefineDevice,
  type DefineRequest,
  type LiveModifyRequest,
  type ModifyRequest,
} from './devices/definitions.js';
export {
  startDevice,
  startParentDevices,
  stopDevice,
  type StartOutcome,
  type StartRequest,
} from './devices/lifecycle.js';
/** Canonical form of a UUID in any spelling mdevctl accepts, or undefined. */
export { parseUuid } from './uuid-forms.js';
/** Parse one definition file's text (exposed for tools that validate configs). */
export { parseConfig } from './config-store.js';
