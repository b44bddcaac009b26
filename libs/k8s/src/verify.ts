/**
 * The pod `kiln promote` runs before it promotes a run: in the run's namespace, with the run's storage mounted
 * read-only, it reads the export stage's manifest, hashes every file of the model (not the eval repository's),
 * and compares each with the digest the manifest records and with the digests the run's status records. Its
 * verdict is its termination message (JSON, below 4 KiB).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Plan, StageBase } from '@kiln/plan';
import { dnsName } from '@kiln/plan';
import { metadata } from './meta.ts';
import { storageEnv, storageVolumes } from './storage.ts';

/** What the verification pod reports. */
export interface VerifyReport {
  /** No file differs from the manifest, and the status's digests are the manifest's. */
  readonly ok: boolean;
  /** modelDigest (@kiln/plan) of the files as hashed, or null when a file could not be read. */
  readonly digest: string | null;
  readonly files: number;
  readonly bytes: number;
  /** One line per difference (at most 10), `name: why`. */
  readonly mismatches: readonly string[];
  /** Files it could not reach (object storage: the pod reads pvc:// and file:// only). */
  readonly unverified: readonly string[];
}

/** The program the pod runs (Python's standard library only: it runs in the trainer's image, which the export used). */
export const VERIFY_SCRIPT = String.raw`
import hashlib, json, os, sys
def local(uri):
    if uri.startswith("pvc://"):
        rest = uri[len("pvc://"):]
        return "/artifacts/" + (rest.split("/", 1)[1] if "/" in rest else "")
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return None
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
def finish(report):
    text = json.dumps(report, separators=(",", ":"))
    print(text)
    try:
        with open("/dev/termination-log", "w") as f:
            f.write(text[:4000])
    except OSError:
        pass
    sys.exit(0)
manifest_uri = os.environ["KILN_VERIFY_MANIFEST"]
status = json.loads(os.environ.get("KILN_VERIFY_STATUS", "[]"))
mismatches, unverified, lines = [], [], []
path = local(manifest_uri)
if path is None or not os.path.isfile(path):
    finish({"ok": False, "digest": None, "files": 0, "bytes": 0, "mismatches": ["manifest: " + manifest_uri + " is not readable here"], "unverified": []})
with open(path, encoding="utf-8") as f:
    manifest = json.load(f)
recorded = {a["name"]: a for a in manifest.get("artifacts", [])}
total = 0
for name, a in sorted(recorded.items()):
    if name.startswith("eval/"):
        continue
    p = local(a.get("uri", ""))
    if p is None:
        unverified.append(name)
        lines.append(name + " " + str(a.get("digest")) + "\n")
        continue
    if not os.path.isfile(p):
        mismatches.append(name + ": missing (" + a.get("uri", "") + ")")
        continue
    found = sha(p)
    total += os.path.getsize(p)
    if found != a.get("digest"):
        mismatches.append(name + ": " + found + " on disk, " + str(a.get("digest")) + " in the manifest")
    lines.append(name + " " + found + "\n")
for s in status:
    m = recorded.get(s.get("name"))
    if m is None:
        mismatches.append(s.get("name", "?") + ": in the run's status, not in the export manifest")
    elif s.get("digest") and s.get("digest") != m.get("digest"):
        mismatches.append(s["name"] + ": " + s["digest"] + " in the run's status, " + str(m.get("digest")) + " in the manifest")
digest = None if any(": missing" in x for x in mismatches) else "sha256:" + hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
finish({"ok": not mismatches, "digest": digest, "files": len(lines), "bytes": total, "mismatches": mismatches[:10], "unverified": unverified[:10]})
`;

/**
 * The verification pod of a run's export: `status` is the export stage's artifacts as the run's status records
 * them. Placed like the export stage (its image, node selector, tolerations), with small resources.
 */
export function verifyPod(plan: Plan, exportStage: Pick<StageBase, 'name' | 'image' | 'manifest' | 'placement' | 'credentials'>, status: readonly { name: string; digest?: string }[], suffix: string): V1Pod {
  const name = dnsName([plan.name, 'verify', plan.runId.slice(2, 10), suffix]);
  const p = exportStage.placement;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadata(plan, name, 'verify'),
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      activeDeadlineSeconds: 1800,
      ...(Object.keys(p.nodeSelector).length ? { nodeSelector: { ...p.nodeSelector } } : {}),
      ...(p.tolerations.length ? { tolerations: p.tolerations.map((t) => ({ ...t })) } : {}),
      containers: [
        {
          name: 'verify',
          image: exportStage.image,
          command: ['python3', '-c', VERIFY_SCRIPT],
          env: [
            ...storageEnv(plan),
            { name: 'KILN_VERIFY_MANIFEST', value: exportStage.manifest },
            { name: 'KILN_VERIFY_STATUS', value: JSON.stringify(status.map((s) => ({ name: s.name, ...(s.digest ? { digest: s.digest } : {}) }))) },
          ],
          resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'FallbackToLogsOnError',
          volumeMounts: storageVolumes(plan).map((v) => ({ name: v.name, mountPath: '/artifacts', readOnly: true })),
        },
      ],
      volumes: storageVolumes(plan),
    },
  };
}
