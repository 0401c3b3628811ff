// Running an exported decoder with onnxruntime-node: a forward over the KV cache (OnnxCausalLM.forward),
// and generation with the library's sampling loop (src/model/generate.ts: greedy / temperature / top-k /
// top-p / repetition penalty / stop tokens) through a DecodingModel whose prefill and decode steps are ORT
// runs. onnxruntime-node is loaded on first use, so importing the library does not load it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { Tensor } from '../../../bindings/tensor.js';
import { generate } from '../../model/generate.js';
import type { DecodingModel, GenerateHooks, GenerationConfig, GenerationResult } from '../../model/generate.js';
import { pastKeyName, presentName } from './decoder-graph.js';
import { ONNX_MANIFEST_FILE, ONNX_MODEL_FILE } from './manifest.js';
import type { OnnxExportManifest } from './manifest.js';

type Ort = typeof ort;
let ortModule: Promise<Ort> | undefined;
export function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => ((m as unknown as { default?: Ort }).default ?? m) as Ort);
  return ortModule;
}

/** The cache of one batch: present.N.key / .value of the last run, [batch, kv_heads, length, head_dim]. */
export interface KvCache {
  batch: number;
  length: number;
  tensors: Map<string, ort.Tensor>;
}

export interface ForwardInput {
  /** [batch][seq] token ids (rows of equal length) */
  ids: readonly (readonly number[])[];
  /** [batch][past + seq] 1 / 0 (default: all ones) */
  attentionMask?: readonly (readonly number[])[];
  /** [batch][seq] (default: past .. past + seq - 1) */
  positionIds?: readonly (readonly number[])[];
  past?: KvCache;
}

export interface ForwardOutput {
  /** [batch, seq, vocab] */
  logits: Float32Array;
  present: KvCache;
}

export interface OnnxSessionOptions {
  /** onnxruntime intra-op threads (default: onnxruntime's choice) */
  threads?: number;
}

function int64(rows: readonly (readonly number[])[], Ort: Ort): ort.Tensor {
  const B = rows.length;
  const n = B ? rows[0].length : 0;
  const data = new BigInt64Array(B * n);
  rows.forEach((r, b) => {
    if (r.length !== n) throw new Error(`ONNX forward: row ${b} has ${r.length} values, row 0 has ${n} (rows must be of equal length)`);
    for (let i = 0; i < n; i++) data[b * n + i] = BigInt(r[i]);
  });
  return new Ort.Tensor('int64', data, [B, n]);
}

/** The shapes a caller needs to feed the cache (export.json's `model`). */
export type OnnxModelShape = Pick<OnnxExportManifest['details']['model'], 'numLayers' | 'numKvHeads' | 'headDim' | 'vocabSize'>;

export class OnnxCausalLM {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly model: OnnxModelShape,
    private readonly Ort: Ort,
  ) {}

  /** A session over a model.onnx path or its bytes, with the model's cache shapes given. */
  static async create(source: string | Uint8Array, model: OnnxModelShape, opts: OnnxSessionOptions = {}): Promise<OnnxCausalLM> {
    const Ort = await loadOrt();
    const options: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    };
    const session = typeof source === 'string' ? await Ort.InferenceSession.create(source, options) : await Ort.InferenceSession.create(source, options);
    return new OnnxCausalLM(session, model, Ort);
  }

  /** Opens an export directory (model.onnx + export.json) or a model.onnx path beside its export.json. */
  static async load(path: string, opts: OnnxSessionOptions = {}): Promise<OnnxCausalLM> {
    const modelPath = path.endsWith('.onnx') ? path : join(path, ONNX_MODEL_FILE);
    const manifestPath = join(dirname(modelPath), ONNX_MANIFEST_FILE);
    if (!existsSync(modelPath)) throw new Error(`${modelPath}: no such ONNX model (exportOnnx writes ${ONNX_MODEL_FILE} and ${ONNX_MANIFEST_FILE})`);
    if (!existsSync(manifestPath)) throw new Error(`${manifestPath}: missing; the export manifest gives the cache shapes (exportOnnx writes it)`);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as OnnxExportManifest;
    if (manifest.export !== 'onnx' || !manifest.details?.model) throw new Error(`${manifestPath}: not the manifest of an ONNX export (export: ${JSON.stringify(manifest.export)})`);
    return OnnxCausalLM.create(modelPath, manifest.details.model, opts);
  }

  get vocabSize(): number {
    return this.model.vocabSize;
  }

  /** An empty cache for `batch` sequences. */
  emptyCache(batch: number): KvCache {
    const { numLayers, numKvHeads, headDim } = this.model;
    const tensors = new Map<string, ort.Tensor>();
    for (let l = 0; l < numLayers; l++)
      for (const k of ['key', 'value'] as const) tensors.set(presentName(l, k), new this.Ort.Tensor('float32', new Float32Array(0), [batch, numKvHeads, 0, headDim]));
    return { batch, length: 0, tensors };
  }

  /** One run of the graph: logits of every position and the cache extended by these tokens. */
  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const B = input.ids.length;
    if (B === 0) throw new Error('ONNX forward: no sequences');
    const S = input.ids[0].length;
    if (S === 0) throw new Error('ONNX forward: no tokens (ids rows are empty)');
    const V = this.model.vocabSize;
    input.ids.forEach((row, b) =>
      row.forEach((t, i) => {
        if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`ONNX forward: ids[${b}][${i}] = ${t} is outside the vocabulary [0, ${V})`);
      }),
    );
    const past = input.past ?? this.emptyCache(B);
    if (past.batch !== B) throw new Error(`ONNX forward: the cache holds ${past.batch} sequences, the input ${B}`);
    const total = past.length + S;
    const mask = input.attentionMask ?? input.ids.map(() => new Array<number>(total).fill(1));
    mask.forEach((m, b) => {
      if (m.length !== total) throw new Error(`ONNX forward: attention_mask row ${b} has ${m.length} values; past ${past.length} + sequence ${S} = ${total} expected`);
    });
    const positions = input.positionIds ?? input.ids.map(() => Array.from({ length: S }, (_, i) => past.length + i));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(input.ids, this.Ort),
      attention_mask: int64(mask, this.Ort),
      position_ids: int64(positions, this.Ort),
    };
    for (let l = 0; l < this.model.numLayers; l++)
      for (const k of ['key', 'value'] as const) feeds[pastKeyName(l, k)] = past.tensors.get(presentName(l, k))!;
    const out = await this.session.run(feeds);
    const tensors = new Map<string, ort.Tensor>();
    for (const [name, t] of Object.entries(out)) if (name.startsWith('present.')) tensors.set(name, t);
    return { logits: out.logits.data as Float32Array, present: { batch: B, length: total, tensors } };
  }

  /**
   * The prefill / decode steps generate() drives. Prompts arrive right-padded (one prefill); each decode
   * step runs the whole batch, finished sequences with a masked-out padding token, so the cache stays one
   * tensor per layer.
   */
  decodingModel(): DecodingModel {
    const V = this.vocabSize;
    let cache: KvCache | null = null;
    let mask: number[][] = [];
    let nextPos: number[] = [];
    return {
      vocabSize: V,
      prefillAsync: async (ids, lengths) => {
        const [B, T] = ids.shape;
        const flat = ids.data<'i32'>();
        const lens = Array.from(lengths.data<'i32'>());
        const rows = Array.from({ length: B }, (_, b) => Array.from(flat.subarray(b * T, (b + 1) * T)));
        mask = lens.map((n) => Array.from({ length: T }, (_, t) => (t < n ? 1 : 0)));
        const positions = lens.map((n) => Array.from({ length: T }, (_, t) => Math.min(t, n - 1)));
        const out = await this.forward({ ids: rows, attentionMask: mask, positionIds: positions });
        cache = out.present;
        nextPos = [...lens];
        const logits = new Float32Array(B * V);
        for (let b = 0; b < B; b++) logits.set(out.logits.subarray((b * T + lens[b] - 1) * V, (b * T + lens[b]) * V), b * V);
        return Tensor.fromArray(logits, [B, V], 'f32');
      },
      decodeStepAsync: async (ids, slots) => {
        if (!cache) throw new Error('ONNX decode step before prefill');
        const B = cache.batch;
        const tok = ids.data<'i32'>();
        const slot = Array.from(slots.data<'i32'>());
        const step = new Array<number>(B).fill(0);
        const pos = new Array<number>(B).fill(0);
        const live = new Array<number>(B).fill(0);
        slot.forEach((b, i) => {
          step[b] = tok[i];
          pos[b] = nextPos[b]++;
          live[b] = 1;
        });
        mask = mask.map((m, b) => [...m, live[b]]);
        const out = await this.forward({ ids: step.map((t) => [t]), attentionMask: mask, positionIds: pos.map((p) => [p]), past: cache });
        cache = out.present;
        const logits = new Float32Array(slot.length * V);
        slot.forEach((b, i) => logits.set(out.logits.subarray(b * V, (b + 1) * V), i * V));
        return Tensor.fromArray(logits, [slot.length, V], 'f32');
      },
    };
  }

  /** Generates from token-id prompts with the library's sampling loop (same config as LlamaModel.generate). */
  generate(prompts: readonly (readonly number[])[], config: GenerationConfig = {}, hooks: GenerateHooks = {}): Promise<GenerationResult> {
    return generate(this.decodingModel(), prompts, config, hooks);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
