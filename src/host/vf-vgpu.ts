/**
 * NVIDIA's SR-IOV VF vGPUs (vendor-specific VFIO, no mdev bus), as a
 * library over an `Environment`: discovery through sysfs (./vf-vgpu/sysfs.ts),
 * capacity (capacity.ts), definitions beside mdevctl's store (store.ts),
 * the inventory and lifecycle (lifecycle.ts), the autostart rule
 * (autostart.ts) and the errors (errors.ts). This file is its one import path.
 */
export {
  KNOWN_BOARDS,
  knownBoard,
  shortTypeName,
  typeKey,
  typeShape,
  type KnownBoard,
  type TypeShape,
} from './vf-vgpu/catalogue.js';
export {
  gpuFramebufferGb,
  typeSizeGb,
  vfGpuCapacity,
  whyNot,
  type VfGpuCapacity,
  type VfGpuMode,
  type VfTypeCapacity,
} from './vf-vgpu/capacity.js';
export { VfVgpuError, errnoText, type VfErrorCode } from './vf-vgpu/errors.js';
export { describeVfError } from './vf-vgpu/describe.js';
export {
  formatDefinition,
  listDefinitions,
  findDefinition,
  parseDefinition,
  vfStoreDir,
  writeDefinition,
  type VfStartMode,
  type VfVgpuDefinition,
} from './vf-vgpu/store.js';
export {
  PCI_DEVICES,
  canonicalPciAddress,
  isPciAddress,
  listVfGpus,
  parseCreatable,
  readVfGpu,
  vfAddresses,
  vfOf,
  type VfGpu,
  type VfSlot,
} from './vf-vgpu/sysfs.js';
export {
  autostartGpu,
  checkOwner,
  checkParams,
  createVgpu,
  definitionOfVf,
  modifyVgpu,
  readVgpuInventory,
  removeVgpu,
  requireGpu,
  resolveType,
  startVgpu,
  stopVgpu,
  type CreateRequest,
  type CreateResult,
  type InventoryOptions,
  type ModifyRequest,
  type RemoveOptions,
  type RemoveResult,
  type VfAutostartRun,
  type VgpuEntry,
  type VgpuInventory,
  type VgpuState,
} from './vf-vgpu/lifecycle.js';
export { VfAutostart, describeVfAutostartRun } from './vf-vgpu/autostart.js';
