import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { replaceFile } from './replace-file.js';
import type { DeviceAttribute } from './catalog.js';

/**
 * What a container gets for a prepared claim, as Container Device
 * Interface specs (github.com/cncf-tags/container-device-interface) that
 * the container runtime reads from the CDI directory when kubelet passes
 * it the ids NodePrepareResources returned:
 *
 * - `<driver>/vfio` — per allocated device, its VFIO nodes:
 *   /dev/vfio/vfio and /dev/vfio/<IOMMU group>, what QEMU in
 *   virt-launcher opens;
 * - `<driver>/metadata` — per request, the device metadata file
 *   (Kubernetes' DRA device metadata, KEP-5304) bind-mounted read-only at
 *   /var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claim>/
 *   <request>/<driver>-metadata.json (resourceclaimtemplates/<pod claim
 *   name>/… for claims made from a template). Its devices carry their
 *   ResourceSlice attributes and `mdevUUID`, the attribute KubeVirt's DRA
 *   support reads to build the domain's mdev hostdev.
 *
 * One spec file per claim and kind, named `<vendor>-<class>_<claim UID>.json`
 * as the CDI library names generated specs, written atomically (a temp
 * file whose name does not end in .json, so a runtime never reads half a
 * spec). The metadata files live in the driver's plugin directory,
 * <plugins>/<driver>/dra-device-metadata/<namespace>_<claim>/<request>/
 * metadata.json, as the device metadata protocol places them.
 */

/** The CDI spec version: deviceNodes by path, mounts and nothing newer need no more. */
export const CDI_VERSION = '0.3.0';
export const METADATA_API_VERSION = 'metadata.resource.k8s.io/v1beta1';
/** Where containers see device metadata. */
export const METADATA_CONTAINER_DIR = '/var/run/kubernetes.io/dra-device-attributes';
/** The claim annotation naming the pod's claim a template claim was made for. */
export const POD_CLAIM_NAME_ANNOTATION = 'resource.kubernetes.io/pod-claim-name';

export interface ClaimRef {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  /** For a claim made from a ResourceClaimTemplate: the pod's name for it. */
  readonly podClaimName?: string | undefined;
}

export interface CdiDevice {
  /** The allocation's request, pool and device names. */
  readonly request: string;
  readonly pool: string;
  readonly device: string;
  /** The device's IOMMU group (its /dev/vfio node). */
  readonly iommuGroup: string;
  /** Attributes for the metadata file (the slice's, plus mdevUUID). */
  readonly attributes: Readonly<Record<string, DeviceAttribute>>;
}

export interface CdiWriterOptions {
  readonly driver: string;
  readonly cdiDir: string;
  /** <plugins dir>/<driver>: where the metadata files go. */
  readonly pluginDir: string;
}

export interface WrittenClaim {
  /** CDI ids per device, in the order given. */
  readonly ids: readonly (readonly string[])[];
  /** Files written (to remove on Unprepare). */
  readonly files: readonly string[];
}

const CDI_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

export class CdiWriter {
  readonly vfioKind: string;
  readonly metadataKind: string;

  constructor(readonly options: CdiWriterOptions) {
    this.vfioKind = `${options.driver}/vfio`;
    this.metadataKind = `${options.driver}/metadata`;
  }

  /** The spec file of a claim for one kind. */
  specPath(kind: 'vfio' | 'metadata', claimUid: string): string {
    return nodePath.join(this.options.cdiDir, `${this.options.driver}-${kind}_${claimUid}.json`);
  }

  /** The metadata file of one request of a claim. */
  metadataPath(claim: ClaimRef, request: string): string {
    return nodePath.join(
      this.options.pluginDir,
      'dra-device-metadata',
      `${claim.namespace}_${claim.name}`,
      request,
      'metadata.json',
    );
  }

  /** Where a container sees the metadata of a request. */
  metadataContainerPath(claim: ClaimRef, request: string): string {
    return claim.podClaimName !== undefined
      ? `${METADATA_CONTAINER_DIR}/resourceclaimtemplates/${claim.podClaimName}/${request}/${this.options.driver}-metadata.json`
      : `${METADATA_CONTAINER_DIR}/resourceclaims/${claim.name}/${request}/${this.options.driver}-metadata.json`;
  }

  /** Write a claim's specs and metadata; returns the CDI ids of each device. */
  write(claim: ClaimRef, devices: readonly CdiDevice[]): WrittenClaim {
    for (const x of [claim.uid, claim.namespace, claim.name, ...devices.map((d) => d.request)]) {
      if (!CDI_NAME.test(x) || x.includes('..'))
        throw new Error(`${JSON.stringify(x)} cannot be part of a CDI device or file name`);
    }
    fs.mkdirSync(this.options.cdiDir, { recursive: true, mode: 0o755 });
    const files: string[] = [];
    const vfioDevices = devices.map((d) => ({
      name: `${claim.uid}-${d.device}`,
      containerEdits: {
        deviceNodes: [{ path: '/dev/vfio/vfio' }, { path: `/dev/vfio/${d.iommuGroup}` }],
      },
    }));
    const vfioPath = this.specPath('vfio', claim.uid);
    replaceFile(
      vfioPath,
      `${JSON.stringify({ cdiVersion: CDI_VERSION, kind: this.vfioKind, devices: vfioDevices }, null, 1)}\n`,
    );
    files.push(vfioPath);

    const requests = [...new Set(devices.map((d) => topRequest(d.request)))].sort();
    const metaDevices = [];
    for (const request of requests) {
      const doc = {
        kind: 'DeviceMetadata',
        apiVersion: METADATA_API_VERSION,
        metadata: { name: claim.name, namespace: claim.namespace, uid: claim.uid, generation: 1 },
        ...(claim.podClaimName !== undefined && { podClaimName: claim.podClaimName }),
        requests: [
          {
            name: request,
            devices: devices
              .filter((d) => topRequest(d.request) === request)
              .map((d) => ({
                driver: this.options.driver,
                pool: d.pool,
                name: d.device,
                attributes: d.attributes,
              })),
          },
        ],
      };
      const path = this.metadataPath(claim, request);
      fs.mkdirSync(nodePath.dirname(path), { recursive: true, mode: 0o755 });
      // A stream of one object per version, newest first; this driver writes v1beta1.
      replaceFile(path, `${JSON.stringify(doc)}\n`);
      files.push(path);
      metaDevices.push({
        name: `${claim.uid}_${request}`,
        containerEdits: {
          mounts: [
            {
              hostPath: path,
              containerPath: this.metadataContainerPath(claim, request),
              options: ['ro', 'bind'],
            },
          ],
        },
      });
    }
    const metaPath = this.specPath('metadata', claim.uid);
    replaceFile(
      metaPath,
      `${JSON.stringify({ cdiVersion: CDI_VERSION, kind: this.metadataKind, devices: metaDevices }, null, 1)}\n`,
    );
    files.push(metaPath);
    return {
      ids: devices.map((d) => [
        `${this.vfioKind}=${claim.uid}-${d.device}`,
        `${this.metadataKind}=${claim.uid}_${topRequest(d.request)}`,
      ]),
      files,
    };
  }

  /** Remove what `write` wrote (files gone already are fine), and emptied metadata directories. */
  remove(files: readonly string[]): void {
    for (const f of files) {
      fs.rmSync(f, { force: true });
      if (f.endsWith(`${nodePath.sep}metadata.json`)) {
        // <claim dir>/<request>/metadata.json: drop the request dir and, once empty, the claim dir.
        for (const dir of [nodePath.dirname(f), nodePath.dirname(nodePath.dirname(f))]) {
          try {
            fs.rmdirSync(dir);
          } catch {
            break; // not empty, or gone
          }
        }
      }
    }
  }
}

/** "gpu/high-memory" (a subrequest of a prioritized list) -> "gpu". */
function topRequest(request: string): string {
  const i = request.indexOf('/');
  return i < 0 ? request : request.slice(0, i);
}
