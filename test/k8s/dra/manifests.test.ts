import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { DeviceClass } from 'kubernetes-models-5/resource.k8s.io/v1/DeviceClass';
import { ResourceClaim } from 'kubernetes-models-5/resource.k8s.io/v1/ResourceClaim';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';
import { readActiveDevice } from '../../../src/host/sysfs-model.js';
import { DEFAULT_DRIVER_NAME } from '../../../src/k8s/dra/api.js';
import { runMdevkit } from '../../support/cli.js';
import { cel } from '../support/dra-allocator.js';
import type { KubeObject } from '../support/fake-apiserver.js';
import { unknownFields } from '../support/known-fields.js';
import { DRIVER, startCluster, type Cluster } from './support.js';

/**
 * deploy/kubernetes/dra checked as the API server would check it — each
 * object against its kind's JSON schema (kubernetes-models; version 5 for
 * resource.k8s.io/v1) and, with strict field validation, for fields its
 * kind does not have (the official client's models) — and then for what
 * it must say for the driver to work: the DeviceClasses select the
 * devices the driver publishes, the example claims are allocated and
 * prepared on a lab, the DaemonSet runs `mdevkit k8s dra` with the paths
 * kubelet and the runtime use, RBAC grants what the driver calls.
 */

const DIR = new URL('../../../deploy/kubernetes/dra/', import.meta.url).pathname;

type Doc = KubeObject & { apiVersion: string; kind: string };

function docs(file: string): Doc[] {
  return parseAllDocuments(fs.readFileSync(nodePath.join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  });
}

/** apiVersion/kind -> the schema and the client's model name. */
const KINDS: Record<string, [new (data: never) => { validate(): void }, string]> = {
  'resource.k8s.io/v1/DeviceClass': [DeviceClass as never, 'V1DeviceClass'],
  'resource.k8s.io/v1/ResourceClaim': [ResourceClaim as never, 'ResourceV1ResourceClaim'],
  'v1/ServiceAccount': [ServiceAccount as never, 'V1ServiceAccount'],
  'apps/v1/DaemonSet': [DaemonSet as never, 'V1DaemonSet'],
  'rbac.authorization.k8s.io/v1/ClusterRole': [ClusterRole as never, 'V1ClusterRole'],
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': [
    ClusterRoleBinding as never,
    'V1ClusterRoleBinding',
  ],
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': [
    ValidatingAdmissionPolicy as never,
    'V1ValidatingAdmissionPolicy',
  ],
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': [
    ValidatingAdmissionPolicyBinding as never,
    'V1ValidatingAdmissionPolicyBinding',
  ],
};

function validate(doc: Doc, where: string): void {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const k = KINDS[key];
  assert.ok(k !== undefined, `${where}: no schema for ${key}`);
  new k[0](doc as never).validate();
  assert.deepEqual(unknownFields(doc, k[1]), [], `${where}: fields ${key} does not have`);
}

const FILES = ['deviceclass.yaml', 'rbac.yaml', 'daemonset.yaml', 'example-claims.yaml'];

let c: Cluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

describe('DRA deployment manifests', () => {
  it('every object is valid for the Kubernetes API (schema and known fields only)', () => {
    const kinds: string[] = [];
    for (const f of FILES) {
      for (const d of docs(f)) {
        validate(d, `${f} ${d.kind}/${d.metadata.name ?? ''}`);
        kinds.push(d.kind);
      }
    }
    assert.deepEqual(kinds.sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'DaemonSet',
      'DeviceClass',
      'DeviceClass',
      'ResourceClaim',
      'ResourceClaim',
      'ResourceClaim',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
  });

  it('the checks catch what the API server would refuse', () => {
    const [dc] = docs('deviceclass.yaml');
    const typo = structuredClone(dc!);
    (typo['spec'] as Record<string, unknown>)['selector'] = [];
    assert.throws(() => validate(typo, 'typo'), /spec\.selector/);
    const wrongType = structuredClone(dc!);
    (
      wrongType['spec'] as { selectors: { cel: { expression: unknown } }[] }
    ).selectors[0]!.cel.expression = 3;
    assert.throws(() => validate(wrongType, 'type'), /expression must be string/);
    const [claim] = docs('example-claims.yaml');
    const noName = structuredClone(claim!);
    delete (noName['spec'] as { devices: { requests: { name?: string }[] } }).devices.requests[0]!
      .name;
    assert.throws(() => validate(noName, 'request name'), /name/);
  });

  it('the DeviceClasses select what the driver publishes: mdevs in one, AP queues in the other', async () => {
    c = await startCluster();
    const devices = c.allocator.pools().flatMap((p) => p.devices);
    const classes = new Map(
      docs('deviceclass.yaml').map((d) => [
        d.metadata.name!,
        (d['spec'] as { selectors: { cel: { expression: string } }[] }).selectors.map(
          (s) => s.cel.expression,
        ),
      ]),
    );
    const select = (cls: string): string[] =>
      devices
        .filter((d) => classes.get(cls)!.every((e) => cel(e, d)))
        .map((d) => (d.attributes['kind'] as { string: string }).string);
    const mdevs = select('mdev.mdevkit.io');
    const queues = select('crypto.mdev.mdevkit.io');
    assert.ok(mdevs.length > 0 && mdevs.every((k) => k === 'mdev'));
    assert.ok(queues.length > 0 && queues.every((k) => k === 'vfio-ap'));
    assert.equal(mdevs.length + queues.length, devices.length);
  });

  it("the example claims (the README's) are allocated and prepared on a lab", async () => {
    c = await startCluster();
    let n = 0;
    for (const claim of docs('example-claims.yaml')) {
      const name = claim.metadata.name!;
      c.api.put('resourceclaims', claim, 'resource.k8s.io');
      const pod = {
        uid: `00000000-0000-4000-8000-0000000e${String(++n).padStart(4, '0')}`,
        name: `pod-${name}`,
        namespace: 'default',
        claims: [name],
      };
      c.allocator.allocate('default', name, pod);
      await c.node.kubelet.preparePod(pod);
      const uid = c.api.get('resourceclaims', name, 'default', 'resource.k8s.io')!.metadata.uid!;
      assert.ok(readActiveDevice(c.node.lab.port, uid) !== undefined, name);
    }
    const vgpu = c.api.get('resourceclaims', 'vgpu', 'default', 'resource.k8s.io')!;
    assert.equal(readActiveDevice(c.node.lab.port, vgpu.metadata.uid!)?.type, 'nvidia-16');
    assert.deepEqual(c.api.invalid, []);
  });

  it("the README's ResourceClaim for a vGPU is the example's", () => {
    const readme = fs.readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const block =
      /```yaml\n(apiVersion: resource\.k8s\.io\/v1\nkind: ResourceClaim\n[\s\S]*?)```/.exec(readme);
    assert.ok(block !== null, 'a ResourceClaim in the README');
    const shown = parseAllDocuments(block[1]!)[0]!.toJS() as Doc;
    assert.deepEqual(shown, docs('example-claims.yaml')[0]);
    validate(shown, 'README');
  });

  it('the DaemonSet runs `mdevkit k8s dra` with the paths kubelet and the runtime use, and no more privilege', () => {
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
                env: unknown[];
                securityContext: Record<string, unknown>;
                volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
              }[];
              volumes: { name: string; hostPath?: { path: string } }[];
            };
          };
        };
      },
    ];
    const pod = ds.spec.template.spec;
    const ctr = pod.containers[0]!;
    assert.equal(pod.hostNetwork, undefined);
    assert.equal(pod.hostPID, undefined);
    assert.deepEqual(ctr.args.slice(0, 2), ['k8s', 'dra']);
    const arg = (name: string): string | undefined =>
      ctr.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    assert.equal(arg('root'), '/host');
    assert.equal(arg('driver-name'), DEFAULT_DRIVER_NAME);
    assert.deepEqual(ctr.env, [
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    ]);
    assert.equal(ctr.securityContext['privileged'], false);
    assert.equal(ctr.securityContext['allowPrivilegeEscalation'], false);
    assert.deepEqual(ctr.securityContext['capabilities'], { drop: ['ALL'] });
    const mountOf = (hostPath: string): { mountPath: string; readOnly?: boolean } => {
      const v = pod.volumes.find((x) => x.hostPath?.path === hostPath);
      assert.ok(v !== undefined, `a hostPath volume for ${hostPath}`);
      const m = ctr.volumeMounts.find((x) => x.name === v.name);
      assert.ok(m !== undefined, `${hostPath} is mounted`);
      return m;
    };
    // Sockets, CDI specs and metadata files are named by host paths: the
    // same paths inside the container.
    const pluginDir = `${arg('plugins-dir')!}/${arg('driver-name')!}`;
    assert.equal(mountOf(pluginDir).mountPath, pluginDir);
    assert.equal(mountOf(arg('registry-dir')!).mountPath, arg('registry-dir'));
    assert.equal(mountOf(arg('cdi-dir')!).mountPath, arg('cdi-dir'));
    assert.equal(mountOf('/sys').mountPath, '/host/sys');
    assert.equal(mountOf('/etc/mdevctl.d').mountPath, '/host/etc/mdevctl.d');
    assert.equal(mountOf('/etc/mdevkit').mountPath, '/host/etc/mdevkit');
    assert.equal(pod.volumes.filter((v) => v.hostPath !== undefined).length, 6);
    // The service account is the one RBAC binds.
    const sa = docs('rbac.yaml').find((d) => d.kind === 'ServiceAccount')!;
    assert.equal(pod.serviceAccountName, sa.metadata.name);
    // Every option the DaemonSet gives is one the command takes.
    const help = runMdevkit(['k8s', 'dra', '--help']);
    for (const a of ctr.args.slice(2)) assert.ok(help.stdout.includes(a.split('=')[0]!), a);
  });

  it('RBAC grants what the driver calls and nothing else; the policy names the driver', () => {
    const rbac = docs('rbac.yaml');
    const role = rbac.find((d) => d.kind === 'ClusterRole') as unknown as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    assert.deepEqual(role.rules, [
      {
        apiGroups: ['resource.k8s.io'],
        resources: ['resourceslices'],
        verbs: ['list', 'create', 'update', 'delete'],
      },
      { apiGroups: ['resource.k8s.io'], resources: ['resourceclaims'], verbs: ['get'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    const policy = JSON.stringify(rbac.find((d) => d.kind === 'ValidatingAdmissionPolicy'));
    assert.ok(policy.includes(`== '${DRIVER}'`));
    assert.ok(policy.includes('system:serviceaccount:mdevkit:mdevkit-dra'));
  });
});
