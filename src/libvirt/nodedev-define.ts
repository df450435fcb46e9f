import * as fs from 'node:fs';
import { isUuid, newUuid } from '../common/uuid.js';
import {
  defineDevice,
  listDefinedDevices,
  modifyDevice,
  type HostHooks,
  type MdevAttribute,
} from '../host/devices.js';
import type { Environment } from '../host/environment.js';
import { mdevNodeDeviceName } from './names.js';
import { listParentNodeDevices } from './nodedev.js';
import { XmlInputError, child, childrenNamed, parseXml } from './xml.js';

/**
 * `virsh nodedev-define` for mdevs: libvirt's node device XML in, an
 * mdevctl definition out. As libvirt does (nodeDeviceDefineXML):
 * - the XML must carry `<capability type='mdev'>` with `<type id>`, and
 *   name its parent — a node device name in `<parent>` (pci_0000_00_02_0,
 *   css_0_0_0023, ap_matrix) or the parent's address in `<parent_addr>`;
 * - without `<uuid>` one is generated;
 * - the device is defined with start mode manual, attributes in order;
 * - a device already defined on that parent has its definition replaced
 *   (libvirt runs `mdevctl modify --defined --jsonfile`).
 */

export interface MdevDefinitionRequest {
  readonly uuid: string;
  /** Parent address, as mdevctl stores it. */
  readonly parent: string;
  readonly type: string;
  readonly attrs: readonly MdevAttribute[];
  /** The UUID was not in the XML. */
  readonly generatedUuid: boolean;
}

/**
 * Read the request from node device XML. Parent names are resolved against
 * the parents present; `<parent_addr>` works even when the parent is absent
 * (mdevctl keeps definitions for parents that come later).
 */
export function parseMdevNodeDeviceXml(
  env: Environment,
  xml: string,
  what = 'node device XML',
): MdevDefinitionRequest {
  const root = parseXml(xml, what);
  if (root.name !== 'device') {
    throw new XmlInputError(`${what} is not a node device: its root element is <${root.name}>`);
  }
  const caps = childrenNamed(root, 'capability');
  const mdev = caps.find((c) => c.attrs['type'] === 'mdev');
  if (mdev === undefined) {
    const types = caps.map((c) => c.attrs['type'] ?? '?').join(', ');
    throw new XmlInputError(
      `${what}: only mediated devices can be defined (no <capability type='mdev'>${types === '' ? '' : `; found ${types}`})`,
    );
  }
  const type = child(mdev, 'type')?.attrs['id'];
  if (type === undefined || type === '') {
    throw new XmlInputError(`${what}: <capability type='mdev'> needs <type id='...'/>`);
  }
  const uuidText = child(mdev, 'uuid')?.text;
  if (uuidText !== undefined && !isUuid(uuidText)) {
    throw new XmlInputError(`${what}: <uuid> ${JSON.stringify(uuidText)} is not a UUID`);
  }
  const attrs: MdevAttribute[] = [];
  for (const a of childrenNamed(mdev, 'attr')) {
    const name = a.attrs['name'];
    const value = a.attrs['value'];
    if (name === undefined || name === '' || value === undefined) {
      throw new XmlInputError(`${what}: every <attr> needs name='...' and value='...'`);
    }
    attrs.push({ name, value });
  }
  const parentName = child(root, 'parent')?.text;
  const parentAddr = child(mdev, 'parent_addr')?.text;
  let parent: string;
  if (parentAddr !== undefined && parentAddr !== '') {
    parent = parentAddr;
    if (parentName !== undefined && parentName !== '') {
      const known = listParentNodeDevices(env.port).find((p) => p.name === parentName);
      if (known !== undefined && known.address !== parentAddr) {
        throw new XmlInputError(
          `${what}: <parent>${parentName}</parent> is ${known.address}, not <parent_addr>${parentAddr}</parent_addr>`,
        );
      }
    }
  } else {
    if (parentName === undefined || parentName === '') {
      throw new XmlInputError(`${what}: cannot define a mediated device without a parent`);
    }
    const parents = listParentNodeDevices(env.port);
    const found = parents.find((p) => p.name === parentName);
    if (found === undefined) {
      const names = parents.map((p) => p.name).sort();
      throw new XmlInputError(
        `${what}: no parent node device named '${parentName}'` +
          (names.length === 0 ? '' : ` (parents here: ${names.join(', ')})`),
      );
    }
    parent = found.address;
  }
  return {
    uuid: (uuidText ?? newUuid()).toLowerCase(),
    parent,
    type,
    attrs,
    generatedUuid: uuidText === undefined,
  };
}

export interface DefineOutcome {
  /** libvirt's name of the defined device. */
  readonly name: string;
  readonly uuid: string;
  readonly parent: string;
  /** An existing definition was replaced. */
  readonly replaced: boolean;
}

/** Define (or redefine) the device the request describes. */
export function defineFromRequest(
  env: Environment,
  req: MdevDefinitionRequest,
  hooks: HostHooks = {},
): DefineOutcome {
  const json = {
    name: 'node device XML',
    read: () =>
      JSON.stringify({
        mdev_type: req.type,
        start: 'manual',
        attrs: req.attrs.map((a) => ({ [a.name]: a.value })),
      }),
  };
  // Without a config directory nothing is defined yet; defineDevice makes it.
  const replaced =
    fs.existsSync(env.configDir) &&
    listDefinedDevices(env, { uuid: req.uuid, parent: req.parent }, hooks).size > 0;
  if (replaced) {
    modifyDevice(env, { uuid: req.uuid, parent: req.parent, json }, hooks);
  } else {
    defineDevice(env, { uuid: req.uuid, parent: req.parent, json }, hooks);
  }
  return {
    name: mdevNodeDeviceName(req.uuid, req.parent),
    uuid: req.uuid,
    parent: req.parent,
    replaced,
  };
}
