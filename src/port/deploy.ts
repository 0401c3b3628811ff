// The deployment side through the port: `export` (a job: PEFT / merged / GGUF / GGUF adapter / Ollama /
// ONNX through src/deploy/export.ts) and every method of the deployment service
// (src/deploy/serving-service.ts: the registry with promote / rollback / tests, serving, the A/B router,
// monitoring), under their own names and with their own zod schemas. The service runs over one registry
// store per sidecar (`--registry DIR`, default .starweave/registry in the workspace), created on first
// use; every path in params goes through the workspace's confinement; drift alarms become warning logs.
import { sep } from 'node:path';
import { z } from 'zod';
import { DEPLOY_METHODS, DeploymentService } from '../deploy/serving-service.js';
import { EXPORT_DTYPES, EXPORT_FORMATS } from '../deploy/export.js';
import type { ExportDType } from '../deploy/export.js';
import type { ExportFormat } from '../deploy/manifest.js';
import type { DriftAlarm } from '../deploy/monitor.js';
import type { CallContext, MethodSpec } from './methods.js';
import type { Job } from './jobs.js';

export const DEFAULT_REGISTRY = '.starweave/registry';

const JobStart = { job: z.string().min(1).max(200).optional(), credits: z.number().int().min(0).max(100_000).default(0) };

const ExportParams = z
  .strictObject({
    ...JobStart,
    format: z.enum([...EXPORT_FORMATS, 'onnx'] as unknown as [ExportFormat | 'onnx', ...(ExportFormat | 'onnx')[]]),
    /** the output folder in the workspace (created; must be empty unless force) */
    out: z.string().min(1),
    /** a training run folder (its adapter/ and its config's model.dir) */
    run: z.string().min(1).optional(),
    /** a PEFT adapter folder */
    adapter: z.string().min(1).optional(),
    /** the base model folder (overrides the run's or the adapter's) */
    model: z.string().min(1).optional(),
    /** peft / merged: f32, f16, bf16; gguf, gguf-adapter, ollama: also q8_0 */
    dtype: z.enum(EXPORT_DTYPES as [ExportDType, ...ExportDType[]]).optional(),
    /** GGUF general.name */
    name: z.string().min(1).optional(),
    /** peft: the base_model_name_or_path to write (default: the base model folder), e.g. its hub id */
    baseModelName: z.string().min(1).optional(),
    /** ollama: an Ollama Go template instead of the one recognised from the chat template */
    ollamaTemplate: z.string().min(1).optional(),
    /** ollama: SYSTEM text */
    system: z.string().optional(),
    /** ollama: base.gguf + adapter.gguf instead of the merged model.gguf */
    separateAdapter: z.boolean().optional(),
    force: z.boolean().optional(),
    /** onnx: f32 (default) or int8 */
    precision: z.enum(['f32', 'int8']).optional(),
    /** onnx: opset 17 (default) or 23 */
    opset: z.union([z.literal(17), z.literal(23)]).optional(),
    /** onnx: weights in model.onnx.data (default: only past 1.8 GB) */
    externalData: z.boolean().optional(),
  })
  .superRefine((p, c) => {
    const onnxOnly = (['precision', 'opset', 'externalData'] as const).filter((k) => p[k] !== undefined);
    const ggufOnly = (['dtype', 'name', 'baseModelName', 'ollamaTemplate', 'system', 'separateAdapter'] as const).filter((k) => p[k] !== undefined);
    if (p.format === 'onnx') for (const k of ggufOnly) c.addIssue({ code: 'custom', path: [k], message: `not an option of the onnx export (its options: precision, opset, externalData)` });
    else for (const k of onnxOnly) c.addIssue({ code: 'custom', path: [k], message: `an option of the onnx export only` });
    if (p.run && p.adapter) c.addIssue({ code: 'custom', path: ['adapter'], message: 'give run or adapter, not both' });
  });
type ExportParams = z.infer<typeof ExportParams>;

/** Runs an export; the job's events: start, then the result (the export.json manifest, paths workspace-relative). */
async function runExport(p: ExportParams, job: Job, ctx: CallContext): Promise<unknown> {
  const ws = ctx.workspace;
  const path = (v: string | undefined, field: string) => (v === undefined ? undefined : ws.resolve(v, `params.${field}`));
  const out = path(p.out, 'out')!;
  const src = { run: path(p.run, 'run'), adapter: path(p.adapter, 'adapter'), model: path(p.model, 'model') };
  job.emit('start', { format: p.format, out: ws.relative(out) });
  const { exportModel, exportOnnxFrom } = await import('../deploy/export.js');
  const { resolveExportSource } = await import('../deploy/source.js');
  // a run's base model (its config's model.dir) must be in the workspace too
  ws.resolve(resolveExportSource(src).baseDir, 'params.model');
  const manifest =
    p.format === 'onnx'
      ? await exportOnnxFrom({ ...src, out, force: p.force, precision: p.precision, opset: p.opset, externalData: p.externalData })
      : await exportModel({ ...src, out, format: p.format, dtype: p.dtype, name: p.name, baseModelName: p.baseModelName, ollamaTemplate: p.ollamaTemplate, system: p.system, separateAdapter: p.separateAdapter, force: p.force });
  return { ...manifest, dir: ws.relative(out) };
}

/**
 * The value with every string that is a path inside the workspace made relative to it (the registry
 * records absolute paths: replies show no host paths, and a client passes them back as they came).
 */
export function workspaceRelative(value: unknown, root: string): unknown {
  if (typeof value === 'string') return value === root ? '.' : value.startsWith(root + sep) ? value.slice(root.length + 1) : value;
  if (Array.isArray(value)) return value.map((v) => workspaceRelative(v, root));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = workspaceRelative(v, root);
    return out;
  }
  return value;
}

let services = new Map<string, DeploymentService>();

/** The deployment service over the sidecar's registry store (one per store folder, made on first use). */
function service(ctx: CallContext): DeploymentService {
  const store = ctx.workspace.resolve(ctx.settings.registry ?? DEFAULT_REGISTRY, 'registry store (--registry)');
  let svc = services.get(store);
  if (!svc) {
    svc = new DeploymentService({ store, resolvePath: (p, field) => ctx.workspace.resolve(p, `params.${field}`) });
    svc.on('alarm', (a: DriftAlarm) =>
      ctx.log('warning', `drift alarm: version ${a.version} on channel ${a.channel ?? '(none)'}: ${a.reasons.map((r) => `${r.metric} ${r.value} > ${r.threshold}`).join(', ')}`, { alarm: a }),
    );
    services.set(store, svc);
  }
  return svc;
}

/** Closes every deployment service (the sidecar is stopping). */
export async function closeDeployServices(): Promise<void> {
  const all = [...services.values()];
  services = new Map();
  await Promise.allSettled(all.map((s) => s.close()));
}

/** The port's deployment methods: export, and every method of DEPLOY_METHODS under its own name and schema. */
export function deployMethods(): Record<string, MethodSpec> {
  const out: Record<string, MethodSpec> = {
    export: {
      kind: 'job',
      summary: 'exports a run, an adapter or a model: PEFT, merged, GGUF, GGUF adapter, Ollama (Modelfile) or ONNX (job; result: the export.json manifest)',
      params: ExportParams,
      run: (p: ExportParams, ctx: CallContext) => {
        // paths are checked now, so that a bad one is the start request's error reply
        for (const k of ['out', 'run', 'adapter', 'model'] as const) if (p[k] !== undefined) ctx.workspace.resolve(p[k], `params.${k}`);
        return (j: Job) => runExport(p, j, ctx);
      },
    } as MethodSpec,
  };
  for (const [name, m] of Object.entries(DEPLOY_METHODS)) {
    out[name] = {
      kind: 'call',
      summary: m.summary,
      // absent params are {} (as the service's own call() takes them)
      params: z.preprocess((v) => v ?? {}, m.params),
      run: async (p: unknown, ctx: CallContext) => workspaceRelative(await m.run(service(ctx), p), ctx.workspace.root),
    } as MethodSpec;
  }
  return out;
}
