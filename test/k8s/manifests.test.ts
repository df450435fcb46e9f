import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { describe, it } from 'node:test';
import { dumpYaml, loadYaml } from '@kubernetes/client-node';
import {
  V1KubeVirtFromJSON,
  V1KubeVirtToJSON,
  V1VirtualMachineInstanceFromJSON,
  V1VirtualMachineInstanceToJSON,
  instanceOfV1MediatedHostDevice,
} from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { parsePluginConfig } from '../../src/k8s/device-plugin/config.js';

/**
 * The deployment manifests (deploy/kubernetes) checked against the
 * Kubernetes API's schemas, as the API server would check them:
 *
 * - kubernetes-models validates each object with the JSON schema of its
 *   kind, generated from Kubernetes' OpenAPI document (types, required
 *   fields, enums, formats);
 * - fields the API does not know are refused, as `kubectl apply` does
 *   with strict field validation: a round trip through the official
 *   client's model (@kubernetes/client-node's ObjectSerializer, generated
 *   from the same OpenAPI document) keeps only known fields, and must give
 *   the manifest back unchanged;
 * - the KubeVirt CR fragment and the example VMI the same way through
 *   KubeVirt's OpenAPI models (@kubevirt-ui-ext/kubevirt-api).
 *
 * Then what the manifests must say for the device plugin to work.
 */

const DIR = new URL('../../deploy/kubernetes/', import.meta.url).pathname;

type Doc = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
};

function docs(file: string): Doc[] {
  return parseAllDocuments(fs.readFileSync(nodePath.join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  });
}

const MODELS: Record<string, { new (data: never): { validate(): void }; clientType: string }> = {};
function model(
  kind: string,
  cls: new (data: never) => { validate(): void },
  clientType: string,
): void {
  MODELS[kind] = Object.assign(cls, { clientType });
}
model('v1/Namespace', Namespace as never, 'V1Namespace');
model('v1/ServiceAccount', ServiceAccount as never, 'V1ServiceAccount');
model('v1/ConfigMap', ConfigMap as never, 'V1ConfigMap');
model('apps/v1/DaemonSet', DaemonSet as never, 'V1DaemonSet');
model('rbac.authorization.k8s.io/v1/ClusterRole', ClusterRole as never, 'V1ClusterRole');
model(
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding',
  ClusterRoleBinding as never,
  'V1ClusterRoleBinding',
);
model(
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy',
  ValidatingAdmissionPolicy as never,
  'V1ValidatingAdmissionPolicy',
);
model(
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding',
  ValidatingAdmissionPolicyBinding as never,
  'V1ValidatingAdmissionPolicyBinding',
);

/** The manifest without what a round trip cannot keep: undefined values. */
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v)) as unknown;
}

/** Paths present in `a` but not in `b`: the fields a model dropped. */
function dropped(a: unknown, b: unknown, at = ''): string[] {
  if (a === null || typeof a !== 'object') return [];
  if (b === null || typeof b !== 'object') return [at || '(top)'];
  const out: string[] = [];
  for (const [k, v] of Object.entries(a)) {
    const path = Array.isArray(a) ? `${at}[${k}]` : `${at}.${k}`;
    if (!(k in (b as object))) out.push(path);
    else out.push(...dropped(v, (b as Record<string, unknown>)[k], path));
  }
  return out;
}

/** Validate one Kubernetes object: its kind's schema, then no unknown field. */
function validateKube(doc: Doc, where: string): void {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const M = MODELS[key];
  assert.ok(M !== undefined, `${where}: no schema for ${key}`);
  new M(doc as never).validate();
  const roundTrip = parseYaml(dumpYaml(loadYaml(stringifyYaml(doc)))) as unknown;
  assert.deepEqual(
    dropped(plain(doc), plain(roundTrip)),
    [],
    `${where}: fields ${key} does not have`,
  );
}

const KUBE_FILES = [
  'namespace.yaml',
  'rbac.yaml',
  'node-restriction.yaml',
  'configmap.yaml',
  'daemonset.yaml',
];

describe('deployment manifests', () => {
  it('every object is valid for the Kubernetes API (schema and known fields only)', () => {
    let n = 0;
    for (const f of KUBE_FILES) {
      for (const d of docs(f)) {
        validateKube(d, `${f} ${d.kind}/${d.metadata.name}`);
        n++;
      }
    }
    assert.equal(n, 8);
  });

  it('the checks catch what the API server would refuse', () => {
    const [ds] = docs('daemonset.yaml');
    const typo = structuredClone(ds!) as unknown as {
      spec: { template: { spec: { containers: Record<string, unknown>[] } } };
    };
    typo.spec.template.spec.containers[0]!['volumeMount'] = [];
    assert.throws(() => validateKube(typo as unknown as Doc, 'typo'), /volumeMount/);
    const wrongType = structuredClone(ds!) as unknown as {
      spec: { template: { spec: { hostPID: unknown } } };
    };
    wrongType.spec.template.spec.hostPID = 'yes';
    assert.throws(
      () => validateKube(wrongType as unknown as Doc, 'type'),
      /hostPID must be boolean/,
    );
    const missing = structuredClone(ds!) as unknown as { spec: { selector?: unknown } };
    delete missing.spec.selector;
    assert.throws(() => validateKube(missing as unknown as Doc, 'missing'), /selector/);
  });

  it('the DaemonSet has the host paths it needs, the node name, and no more privilege', () => {
    const [ds] = docs('daemonset.yaml') as unknown as [
      {
        spec: {
          template: {
            spec: {
              serviceAccountName: string;
              hostNetwork?: boolean;
              hostPID?: boolean;
              containers: {
                args: string[];
                env: { name: string; valueFrom: { fieldRef: { fieldPath: string } } }[];
                securityContext: Record<string, unknown>;
                volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
              }[];
              volumes: {
                name: string;
                hostPath?: { path: string };
                configMap?: { name: string };
              }[];
            };
          };
        };
      },
    ];
    const pod = ds.spec.template.spec;
    const c = pod.containers[0]!;
    assert.equal(pod.serviceAccountName, 'mdevkit-device-plugin');
    assert.equal(pod.hostNetwork, undefined);
    assert.equal(pod.hostPID, undefined);
    assert.deepEqual(c.args.slice(0, 2), ['k8s', 'device-plugin']);
    assert.ok(c.args.includes('--root=/host'));
    assert.deepEqual(c.env, [
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    ]);
    assert.equal(c.securityContext['privileged'], false);
    assert.equal(c.securityContext['allowPrivilegeEscalation'], false);
    assert.deepEqual(c.securityContext['capabilities'], { drop: ['ALL'] });
    const mountOf = (hostPath: string): { mountPath: string; readOnly?: boolean } => {
      const v = pod.volumes.find((x) => x.hostPath?.path === hostPath);
      assert.ok(v !== undefined, `a hostPath volume for ${hostPath}`);
      const m = c.volumeMounts.find((x) => x.name === v.name);
      assert.ok(m !== undefined, `${hostPath} is mounted`);
      return m;
    };
    assert.equal(
      mountOf('/var/lib/kubelet/device-plugins').mountPath,
      '/var/lib/kubelet/device-plugins',
    );
    assert.equal(mountOf('/sys').mountPath, '/host/sys');
    assert.equal(mountOf('/etc/mdevctl.d').mountPath, '/host/etc/mdevctl.d');
    assert.equal(mountOf('/dev/vfio').mountPath, '/host/dev/vfio');
    assert.equal(mountOf('/dev/vfio').readOnly, true);
    assert.deepEqual(
      pod.volumes
        .filter((v) => v.hostPath !== undefined)
        .map((v) => v.hostPath!.path)
        .sort(),
      ['/dev/vfio', '/etc/mdevctl.d', '/etc/mdevkit', '/sys', '/var/lib/kubelet/device-plugins'],
    );
  });

  it('RBAC grants get/list/watch/patch of Nodes and Events, nothing else', () => {
    const role = docs('rbac.yaml').find((d) => d.kind === 'ClusterRole') as unknown as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
  });

  it("the ConfigMap's device plugin configuration is one the plugin accepts, and the KubeVirt CR names its resources", () => {
    const [cm] = docs('configmap.yaml') as unknown as [{ data: Record<string, string> }];
    const config = parsePluginConfig(cm.data['device-plugin.yaml']!, '/config/device-plugin.yaml');
    assert.equal(config.nodeConfig?.file, '/config/host.yaml');
    assert.equal(config.nodeConfig?.label, 'mdevkit.io/config');
    assert.ok(cm.data['host.yaml']!.includes('configs:'));
    const [kv] = docs('kubevirt-cr.yaml');
    const back = V1KubeVirtToJSON(V1KubeVirtFromJSON(kv)) as {
      spec: { configuration?: { permittedHostDevices?: { mediatedDevices?: unknown[] } } };
    };
    assert.deepEqual(dropped(plain(kv), plain(back)), [], 'fields KubeVirt does not have');
    const mdevs = (back.spec.configuration?.permittedHostDevices?.mediatedDevices ?? []) as {
      resourceName: string;
      externalResourceProvider?: boolean;
    }[];
    assert.ok(
      mdevs.every(
        (m) => instanceOfV1MediatedHostDevice(m as never) && m.externalResourceProvider === true,
      ),
    );
    assert.deepEqual(
      mdevs.map((m) => m.resourceName),
      config.resources.map((r) => r.name),
    );
  });

  it('the example VMI asks for a resource the plugin advertises', () => {
    const [vmi] = docs('example-vmi.yaml');
    const back = V1VirtualMachineInstanceToJSON(V1VirtualMachineInstanceFromJSON(vmi)) as {
      spec: { domain: { devices: { gpus?: { deviceName: string }[] } } };
    };
    assert.deepEqual(dropped(plain(vmi), plain(back)), []);
    assert.deepEqual(
      back.spec.domain.devices.gpus?.map((g) => g.deviceName),
      ['nvidia.com/GRID_M60_2Q'],
    );
  });
});
