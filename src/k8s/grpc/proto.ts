import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * The kubelet's gRPC APIs, from mdevkit's own .proto files under
 * src/k8s/proto (written from the APIs' published description; see the
 * header of each file). They are loaded at run time with
 * @grpc/proto-loader rather than compiled to code: the files stay the one
 * description of the wire format, and the TypeScript types beside each
 * service (device-plugin/api.ts, ...) name the same fields.
 *
 * Loader options, for every API alike:
 * - `keepCase`: field names as in the .proto (`ID`, `devices_ids`,
 *   `available_deviceIDs`), never camel-cased, so a message prints as the
 *   API's documentation shows it;
 * - `longs: Number`: int64 NUMA node ids are small numbers;
 * - `defaults` and `arrays`: an absent repeated field is `[]` and an absent
 *   string `''`, as in Go's generated code, so readers need no guards.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
};

/**
 * Where the .proto files are: src/k8s/proto of the checkout (or installed
 * package) this module runs from — beside this file's folder when run from
 * the sources, found by walking up from dist/ or dist/chunks/ when run from
 * the CLI bundle, or from bench/ when a benchmark bundle runs. The package
 * ships src/ (package.json has no `files` list), so both layouts find it.
 */
export function findProtoRoot(start = nodePath.dirname(fileURLToPath(import.meta.url))): string {
  const marker = nodePath.join('k8s', 'proto');
  for (let dir = start, i = 0; i < 6; i++, dir = nodePath.dirname(dir)) {
    for (const candidate of [nodePath.join(dir, marker), nodePath.join(dir, 'src', marker)]) {
      if (fs.existsSync(nodePath.join(candidate, 'deviceplugin'))) return candidate;
    }
  }
  throw new Error(`mdevkit's .proto files (src/k8s/proto) are not above ${start}`);
}

const loaded = new Map<string, grpc.GrpcObject>();

/** The package object of one .proto file (relative to src/k8s/proto), loaded once per process. */
export function loadProto(relative: string): grpc.GrpcObject {
  let pkg = loaded.get(relative);
  if (pkg === undefined) {
    const file = nodePath.join(findProtoRoot(), relative);
    pkg = grpc.loadPackageDefinition(protoLoader.loadSync(file, LOADER_OPTIONS));
    loaded.set(relative, pkg);
  }
  return pkg;
}

/** A service's client constructor (and its `.service` definition) at `path` in a loaded package. */
export function serviceAt(pkg: grpc.GrpcObject, path: string): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of path.split('.')) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== 'function' || !('service' in node)) {
    throw new Error(`no gRPC service ${path} in the loaded .proto`);
  }
  return node as grpc.ServiceClientConstructor;
}
