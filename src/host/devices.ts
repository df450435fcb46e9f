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
 * device, parent, type, attribute file, with the write's errno as its
 * code. The decision rules (which option wins, which errors, which callout
 * script speaks for a device) are mdevctl 1.4.0's so the CLI stays a
 * drop-in; where mdevctl panics this library throws a clear MdevError.
 *
 * `hooks.warn` receives what mdevctl logs at WARN level (e.g. a config file
 * whose name is not a UUID); `hooks.calloutStderr` what callout scripts say.
 *
 * Sysfs and definition files are read and written synchronously, like the
 * port. Operations that may run callout scripts (start, stop, define,
 * undefine, modify, modify --live, autostart, the listing of running
 * devices) come three ways: `xxxSteps` is the operation as a generator
 * that yields each script run (src/host/script-runner.ts), `xxx` runs it
 * with spawnSync (the CLI), `xxxAsync` with spawn and await (the agent: its
 * event loop keeps running while a script does). Every script run has a
 * time limit (`hooks.calloutTimeoutMs`); one that runs out fails the
 * operation with `callout-timeout`, naming the script.
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
  WarnSource,
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
  listActiveDevicesAsync,
  listActiveDevicesSteps,
  listDefinedDevices,
  listTypes,
} from './devices/listing.js';
export {
  defineDevice,
  defineDeviceAsync,
  defineDeviceSteps,
  jsonFileSource,
  modifyDevice,
  modifyDeviceAsync,
  modifyDeviceSteps,
  modifyLive,
  modifyLiveAsync,
  modifyLiveSteps,
  undefineDevice,
  undefineDeviceAsync,
  undefineDeviceSteps,
  type DefineRequest,
  type Defined,
  type LiveModifyRequest,
  type ModifyRequest,
} from './devices/definitions.js';
export {
  startDevice,
  startDeviceAsync,
  startDeviceSteps,
  startParentDevices,
  startParentDevicesAsync,
  startParentDevicesSteps,
  stopDevice,
  stopDeviceAsync,
  stopDeviceSteps,
  type StartOutcome,
  type StartRequest,
  type Started,
} from './devices/lifecycle.js';
export {
  DEFAULT_CALLOUT_TIMEOUT_MS,
  runAsync,
  runSync,
  type RunnerOptions,
  type ScriptRequest,
  type ScriptResult,
  type Steps,
} from './script-runner.js';
export { CalloutError, CalloutTimeoutError } from './callouts.js';
/** Canonical form of a UUID in any spelling mdevctl accepts, or undefined. */
export { parseUuid } from './uuid-forms.js';
/** Parse one definition file's text (exposed for tools that validate configs). */
export { parseConfig } from './config-store.js';
