import { fileURLToPath } from 'node:url';
import { compileFile, type Plan } from '@kiln/plan';
import { describe, expect, it } from 'vitest';
import { allObjects, controllerDeployment, evalModelObjects, evalModelUrl, modelRun, modelRunCrd, platformObjects, priorityClassName, servingObjects, servingUrl, stageConfig, stageObjects, targetModel, TRAIN_TERMINATION_GRACE_SECONDS } from '../src/index.ts';
import { SCHEMAS, TERMINAL_EXIT } from '@kiln/stage';
import { DIGEST, record, served } from './served.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
function plan(file: string, stack?: string): Plan {
  const r = compileFile(configs + file, stack ? { stack } : {});
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.plan;
}
const stage = (p: Plan, name: string) => p.stages.find((s) => s.name === name)!;

describe('data-prep Job', () => {
  const p = plan('replit-code-v1-3b.yaml');
  const { job, configMap } = stageObjects(p, stage(p, 'data-prep'));

  it('is an Indexed Job with one index per shard, retried per index', () => {
    expect(job.spec).toMatchObject({ completions: 256, parallelism: 256, completionMode: 'Indexed', backoffLimitPerIndex: 2 });
    expect(job.metadata?.name).toBe(`${p.runId}-data-prep`);
  });
  it('fails at once on the terminal exit code and does not count node loss or preemption', () => {
    expect(job.spec?.podFailurePolicy?.rules).toEqual([
      { action: 'FailJob', onExitCodes: { containerName: 'data-prep', operator: 'In', values: [TERMINAL_EXIT] } },
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] },
    ]);
  });
  it('mounts its config, gets no API token, and reports through its termination message', () => {
    const pod = job.spec!.template.spec!;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.volumes?.[0]).toEqual({ name: 'config', configMap: { name: configMap.metadata!.name } });
    expect(pod.containers[0]!.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(JSON.parse(configMap.data!['stage.json']!)).toMatchObject({ runId: p.runId, stage: 'data-prep', output: `${p.storagePrefix}/data/shards/` });
  });
});

describe('attempts', () => {
  const p = plan('tiny.yaml');
  const train = stage(p, 'train');
  const upstream = { pack: { summary: { metrics: { tokens: 2 } }, manifest: 'pvc://x/manifests/pack.json' } };
  const second = stageObjects(p, train, { attempt: 2, upstream, podAnnotations: { 'kiln.dev/sim-exit-code': '0' } });
  const config = JSON.parse(second.configMap.data!['stage.json']!) as Record<string, unknown>;

  it('gives a later attempt a Job and config of its own, so an earlier attempt is never rerun or rewritten', () => {
    expect(second.job.metadata!.name).toBe(`${p.runId}-train-2`);
    expect(second.configMap.metadata!.name).toBe(`${p.runId}-train-2-config`);
    expect(second.job.metadata!.labels!['kiln.dev/attempt']).toBe('2');
    expect(second.job.spec!.template.metadata!.labels!['kiln.dev/attempt']).toBe('2');
    expect(stageObjects(p, train).job.metadata!.name).toBe(`${p.runId}-train`);
  });
  it('tells a retried stage to resume and hands it the upstream summaries and manifests', () => {
    expect(config).toMatchObject({ attempt: 2, resume: true, upstream, manifest: train.manifest });
    expect(JSON.parse(stageObjects(p, train).configMap.data!['stage.json']!)).toMatchObject({ attempt: 1, resume: false, upstream: {} });
    const env = Object.fromEntries(second.job.spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    expect(env.KILN_ATTEMPT).toBe('2');
    expect(env.MASTER_ADDR).toBe(`${p.runId}-train-2-0.${p.runId}-train-rdzv`);
  });
  it('puts extra pod annotations on the pod template only', () => {
    expect(second.job.spec!.template.metadata!.annotations).toEqual({ 'kiln.dev/sim-exit-code': '0' });
    expect(second.job.metadata!.annotations).toBeUndefined();
  });
});

describe('training Job', () => {
  const p = plan('replit-code-v1-3b.yaml');
  const { job, service } = stageObjects(p, stage(p, 'train'));
  const pod = job.spec!.template.spec!;
  const c = pod.containers[0]!;

  it('gives its pods 300 s from SIGTERM to kill, for the checkpoint the trainer saves on SIGTERM; other stages keep the default', () => {
    expect(pod.terminationGracePeriodSeconds).toBe(TRAIN_TERMINATION_GRACE_SECONDS);
    expect(TRAIN_TERMINATION_GRACE_SECONDS).toBe(300);
    for (const s of p.stages.filter((x) => x.kind !== 'train')) expect(stageObjects(p, s).job.spec!.template.spec!.terminationGracePeriodSeconds, s.name).toBeUndefined();
  });
  it('runs one pod per node as an Indexed Job, all at once', () => {
    // A failed pod fails the attempt: the whole torchrun group restarts from the checkpoint under the controller.
    expect(job.spec).toMatchObject({ completions: 32, parallelism: 32, completionMode: 'Indexed', backoffLimit: 0 });
  });
  it('gives torchrun a rendezvous through a headless Service and the completion index as rank', () => {
    expect(service?.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(pod.subdomain).toBe(service!.metadata!.name);
    const env = Object.fromEntries(c.env!.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
    expect(env.MASTER_ADDR).toBe(`${job.metadata!.name}-0.${service!.metadata!.name}`);
    expect(env.NODE_RANK).toBe("metadata.annotations['batch.kubernetes.io/job-completion-index']");
    // torchrun through kiln_trainer.launch (which keeps the stage's exit codes): the rendezvous flags follow it.
    expect(c.command?.slice(0, 6)).toEqual(['python', '-m', 'kiln_trainer.launch', '--node-rank=$(NODE_RANK)', '--master-addr=$(MASTER_ADDR)', '--master-port=$(MASTER_PORT)']);
    expect(c.command?.slice(-4)).toEqual(['-m', 'kiln_trainer.train', '--config', '/etc/kiln/stage.json']);
  });
  it('asks for 8 GPUs on nodes of the right GPU model, with shared memory', () => {
    expect(c.resources?.limits).toMatchObject({ 'nvidia.com/gpu': '8' });
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB', 'kiln.dev/pool': 'train-a100' });
    expect(pod.volumes).toContainEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '64Gi' } });
  });
});

describe('eval Job', () => {
  const p = plan('tiny.yaml');
  const { job, networkPolicy } = stageObjects(p, stage(p, 'eval-humaneval'));
  const pod = job.spec!.template.spec!;

  it('is hardened as a sandbox', () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0]!.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } });
  });
  it('may only reach the model endpoint and DNS', () => {
    expect(networkPolicy?.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(networkPolicy?.spec?.egress?.map((e) => e.to?.[0]?.podSelector?.matchLabels)).toEqual([
      { 'kiln.dev/run-id': p.runId, 'app.kubernetes.io/component': 'eval-model' },
      { 'k8s-app': 'kube-dns' },
    ]);
  });
});

describe('Triton serving', () => {
  const p = plan('multinode-7b.yaml');
  const o = servingObjects(p, p.serving[0]!, served(p, p.serving[0]!));

  it('checks readiness on the v2 health endpoint and exposes HTTP, gRPC and metrics', () => {
    const c = o.deployment.spec!.template.spec!.containers[0]!;
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/v2/health/ready', port: 8000 });
    expect(c.ports?.map((x) => x.containerPort)).toEqual([8000, 8001, 8002]);
    expect(c.resources?.limits).toMatchObject({ 'nvidia.com/gpu': '2' });
  });
  it('scales between the spec bounds and keeps a replica through disruptions', () => {
    expect(o.hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 16 });
    expect(o.hpa.spec?.metrics?.[0]?.pods?.metric.name).toBe('nv_inference_queue_duration_ms');
    expect(o.pdb.spec?.minAvailable).toBe(1);
  });
});

describe('platform', () => {
  const p = plan('tiny.yaml');
  const o = platformObjects(p);
  it('gives the controller namespaced rights over what it runs, and no access to secrets', () => {
    const rules = o.roles[0]!.rules!;
    expect(rules.flatMap((r) => r.resources)).not.toContain('secrets');
    expect(rules.flatMap((r) => r.verbs)).not.toContain('*');
    // The progress channel reads rank 0's log tail: get on pods/log, nothing more.
    expect(rules.filter((r) => r.resources!.includes('pods/log'))).toEqual([{ apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }]);
    expect(o.roleBindings[0]!.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kiln-controller', namespace: 'kiln-tiny' }]);
  });
  it('creates the claim of pvc:// storage', () => {
    expect(o.pvc?.metadata?.name).toBe('kiln-artifacts');
  });
  it('declares the ModelRun CRD with a status subresource and printer columns', () => {
    const v = modelRunCrd().spec.versions[0]!;
    expect(v.subresources?.status).toEqual({});
    expect(v.additionalPrinterColumns?.map((c) => c.name)).toEqual(['Run', 'Stack', 'Phase', 'Stage', 'Age']);
    // The status is structural: a stage's progress fields are declared, or the API server prunes them. They
    // are the stage contract's (progress.schema.json), field for field.
    const status = v.schema!.openAPIV3Schema!.properties!.status!;
    const progress = status.properties!.stages!.items as { properties: { progress: { properties: object } } };
    expect(Object.keys(progress.properties.progress.properties).sort()).toEqual(Object.keys(SCHEMAS.progress.properties as object).sort());
    expect(modelRun(p).spec).toMatchObject({ runId: p.runId, suspend: false });
  });
});

describe('every object of every example spec', () => {
  it.each(['replit-code-v1-3b.yaml', 'tiny.yaml', 'fim.yaml', 'ul2.yaml', 'multinode-7b.yaml'])('%s: DNS-safe names of at most 63 characters, deterministic', (f) => {
    const objs = allObjects(plan(f), { model: record(plan(f)), canary: record(plan(f), 'r-0123456789ab') });
    for (const o of objs) expect(o.metadata?.name, `${o.kind}`).toMatch(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/);
    expect(JSON.stringify(allObjects(plan(f), { model: record(plan(f)), canary: record(plan(f), 'r-0123456789ab') }))).toBe(JSON.stringify(objs));
  });
});

describe('snapshots (tiny)', () => {
  const p = plan('tiny.yaml');
  it.each(p.stages.map((s) => s.name))('stage %s', (name) => expect(stageObjects(p, stage(p, name))).toMatchSnapshot());
  it('serving', () => expect(servingObjects(p, p.serving[0]!, served(p, p.serving[0]!))).toMatchSnapshot());
  it('platform', () => expect(platformObjects(p)).toMatchSnapshot());
  it('controller', () => expect(controllerDeployment(p)).toMatchSnapshot());
  it('model run', () => expect(modelRun(p)).toMatchSnapshot());
});

describe('placement, priority and credentials (multinode-7b)', () => {
  const p = plan('multinode-7b.yaml');
  const train = stageObjects(p, stage(p, 'train')).job;
  const prep = stageObjects(p, stage(p, 'data-prep')).job;

  it('runs training on its node pool, at its priority, through its Kueue queue', () => {
    const pod = train.spec!.template.spec!;
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3', 'node.kubernetes.io/instance-type': 'p5.48xlarge' });
    expect(pod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(stage(p, 'train').priority).toBe('high');
    expect(pod.priorityClassName).toBe('kiln-high');
    expect(train.metadata?.labels?.['kueue.x-k8s.io/queue-name']).toBe('llm-training');
  });

  it('names the PriorityClass of a priority as the platform creates it', () => {
    expect(platformObjects(p).priorityClasses.map((c) => c.metadata!.name)).toEqual((['low', 'normal', 'high'] as const).map(priorityClassName));
    expect(platformObjects(p).priorityClasses.map((c) => c.metadata!.name)).toContain(train.spec!.template.spec!.priorityClassName);
    expect(stageObjects(p, stage(p, 'data-prep')).job.spec!.template.spec!.priorityClassName).toBeUndefined();
  });

  it('passes credentials by reference to their Secrets, never by value', () => {
    const env = prep.spec!.template.spec!.containers[0]!.env!.filter((e) => e.name.startsWith('KILN_SECRET_'));
    expect(env).toEqual([
      { name: 'KILN_SECRET_ARTIFACTS', valueFrom: { secretKeyRef: { name: 'artifact-writer', key: 'credentials' } } },
      { name: 'KILN_SECRET_HF_TOKEN', valueFrom: { secretKeyRef: { name: 'huggingface', key: 'token' } } },
      { name: 'KILN_SECRET_GIT_DEPLOY_KEY', valueFrom: { secretKeyRef: { name: 'monorepo-deploy-key', key: 'ssh-privatekey' } } },
      { name: 'KILN_SECRET_DATA_BUCKET', valueFrom: { secretKeyRef: { name: 'acme-data-reader', key: 'credentials' } } },
    ]);
    expect(prep.spec!.template.spec!.containers[0]!.env!.every((e) => e.value === undefined || !/secret|token|key/i.test(e.name))).toBe(true);
  });

  it('runs CPU stages on the CPU pool', () => {
    expect(prep.spec!.template.spec!.nodeSelector).toEqual({ 'node.kubernetes.io/instance-type': 'm7i.8xlarge' });
  });
});

describe('stage commands', () => {
  const p = plan('tiny.yaml');
  const command = (name: string) => stageObjects(p, stage(p, name)).job.spec!.template.spec!.containers[0]!.command;

  it('run each worker\'s own bin with the mounted config appended', () => {
    expect(command('data-prep')).toEqual(['kiln-data-prep', 'prep', '--config', '/etc/kiln/stage.json']);
    expect(command('eval-humaneval')).toEqual(['kiln-eval-runner', '--config', '/etc/kiln/stage.json']);
    expect(command('tokenizer')).toEqual(['python', '-m', 'kiln_trainer.tokenizer', '--config', '/etc/kiln/stage.json']);
    const env = stageObjects(p, stage(p, 'pack')).job.spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === 'KILN_CONFIG')!.value).toBe('/etc/kiln/stage.json');
  });
});

describe('serving URL', () => {
  it('is the target\'s Service on Triton\'s HTTP port', () => {
    const p = plan('multinode-7b.yaml');
    const t = p.serving[0]!;
    expect(servingUrl(p, t)).toBe(`http://${servingObjects(p, t, served(p, t)).service.metadata!.name}.${p.namespace}.svc:8000`);
  });
});

describe('Triton model repository', () => {
  it('is read from object storage directly, or from the mounted claim for pvc://', () => {
    const s3 = plan('multinode-7b.yaml');
    const c3 = servingObjects(s3, s3.serving[0]!, served(s3, s3.serving[0]!)).deployment.spec!.template.spec!.containers[0]!;
    expect(c3.command).toContain(`--model-repository=${s3.storagePrefix}/export/completions/`);
    const pvc = plan('tiny.yaml');
    const d = servingObjects(pvc, pvc.serving[0]!, served(pvc, pvc.serving[0]!)).deployment.spec!.template.spec!;
    expect(d.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny/runs/${pvc.runId}/export/completions/`);
    expect(d.volumes).toEqual([{ name: 'artifacts', persistentVolumeClaim: { claimName: 'kiln-artifacts' } }]);
    expect(d.containers[0]!.volumeMounts).toEqual([{ name: 'artifacts', mountPath: '/artifacts', readOnly: true }]);
  });
});

describe('serving the promoted model', () => {
  const p = plan('tiny.yaml');
  const t = p.serving[0]!;
  const other = 'r-0123456789ab';

  it('GIVEN a promotion of another run WHEN Triton is built THEN it serves that run\'s repository, labelled with its run and annotated with its digest', () => {
    const d = servingObjects(p, t, served(p, t, other, DIGEST)).deployment;
    const pod = d.spec!.template;
    const c = pod.spec!.containers[0]!;
    expect(c.command).toContain(`--model-repository=/artifacts/tiny/runs/${other}/export/completions/`);
    expect(c.command!.join(' ')).not.toContain(p.runId);
    expect(c.env).toContainEqual({ name: 'KILN_STORAGE_PREFIX', value: `pvc://kiln-artifacts/tiny/runs/${other}` });
    expect(pod.metadata!.labels!['kiln.dev/run-id']).toBe(other);
    expect(pod.metadata!.annotations).toEqual({ 'kiln.dev/model-digest': DIGEST });
    expect(d.metadata!.labels!['kiln.dev/run-id']).toBe(other);
    // The name stays the target's: a new promotion rolls the same Deployment.
    expect(d.metadata!.name).toBe('tiny-completions');
  });

  it('GIVEN a new promotion WHEN rebuilt THEN only the model\'s fields of the pod template change (the stack\'s own run does not show)', () => {
    const a = servingObjects(p, t, served(p, t, other, DIGEST)).deployment.spec!.template;
    const b = servingObjects(p, t, served(p, t, other, `sha256:${'ef'.repeat(32)}`)).deployment.spec!.template;
    expect(b.metadata!.annotations!['kiln.dev/model-digest']).not.toBe(a.metadata!.annotations!['kiln.dev/model-digest']);
    const changedRun = { ...p, runId: 'r-ffffffffffff', storagePrefix: 'pvc://kiln-artifacts/tiny/runs/r-ffffffffffff' };
    expect(servingObjects(changedRun, t, served(p, t, other, DIGEST)).deployment.spec!.template).toEqual(a);
  });

  it('GIVEN a promotion without a repository for the target WHEN resolved THEN an Error names the target and the repositories it has', () => {
    expect(() => targetModel(t, { run: other, digest: DIGEST, repositories: { chat: 'pvc://kiln-artifacts/x/', fim: 'pvc://kiln-artifacts/y/' } })).toThrow(
      /serving target completions: the promotion of run r-0123456789ab has no model repository for it \(it has chat, fim\)/,
    );
    expect(() => targetModel(t, { run: other, digest: DIGEST, repositories: {} })).toThrow(/\(it has none\)/);
    expect(targetModel(t, record(p, other)).repository).toBe(`pvc://kiln-artifacts/tiny/runs/${other}/export/completions/`);
  });

  it('GIVEN no model WHEN every object is listed THEN no Triton, canary or gateway object; with one, the target\'s', () => {
    const names = (o: ReturnType<typeof allObjects>) => o.filter((x) => x.metadata?.labels?.['app.kubernetes.io/component']?.startsWith('serving') || x.metadata?.labels?.['app.kubernetes.io/component'] === 'gateway').map((x) => `${x.kind} ${x.metadata!.name}`);
    expect(names(allObjects(p))).toEqual([]);
    expect(names(allObjects(p, { model: record(p, other) }))).toEqual(expect.arrayContaining(['Deployment tiny-completions', 'Service tiny-completions', 'ConfigMap tiny-completions-gateway', 'Deployment tiny-completions-gateway']));
  });
});

describe('eval model server', () => {
  it('is the endpoint eval stages are given, and what their NetworkPolicy lets them reach', () => {
    const p = plan('tiny.yaml');
    const { deployment, service } = evalModelObjects(p);
    const evalStage = stage(p, 'eval-humaneval');
    // The plan names the server; its URL, the eval stage's endpoint, is made here and mounted with the config.
    expect(evalStage.config).not.toHaveProperty('endpoint');
    expect(evalModelUrl(p)).toBe(`http://${service.metadata!.name}.kiln-tiny.svc:8000`);
    expect(service.spec!.ports!.find((x) => x.name === 'http')!.port).toBe(8000);
    expect(stageConfig(p, evalStage)).toMatchObject({ endpoint: evalModelUrl(p) });
    expect(JSON.parse(stageObjects(p, evalStage).configMap.data!['stage.json']!)).toMatchObject({ endpoint: evalModelUrl(p) });
    const allowed = stageObjects(p, evalStage).networkPolicy!.spec!.egress![0]!.to![0]!.podSelector!.matchLabels;
    expect(deployment.spec!.template.metadata!.labels).toMatchObject(allowed!);
    expect(deployment.spec!.template.spec!.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny/runs/${p.runId}/export/eval/`);
  });
});
