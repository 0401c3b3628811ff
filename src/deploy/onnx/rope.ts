// Rotary inverse frequencies of a Llama-family config, as transformers computes them (and as the native
// core's rope_inv_freq in native/cpu/kernels.cpp does, which JavaScript cannot call): inv_freq[j] =
// 1 / theta^(2j/D) with the exponent in f32, then llama3 scaling (_compute_llama3_parameters) or the
// linear factor, rounded to f32. The exported graph multiplies these by the position ids in f32, as
// transformers' rotary embedding does.
import type { ModelConfig } from '../../model/config.js';

export function ropeInvFreq(c: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = c.headDim / 2;
  const out = new Float32Array(half);
  const rs = c.ropeScaling;
  for (let j = 0; j < half; j++) {
    const expo = Math.fround(Math.fround(2 * j) / Math.fround(c.headDim));
    let f = 1 / Math.pow(c.ropeTheta, expo);
    if (rs.type === 'llama3') {
      const old = rs.originalMaxPositionEmbeddings;
      const lowWavelen = old / rs.lowFreqFactor;
      const highWavelen = old / rs.highFreqFactor;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) f = f / rs.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (old / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
        f = ((1 - smooth) * f) / rs.factor + smooth * f;
      }
    } else if (rs.type === 'linear') {
      f /= rs.factor;
    }
    out[j] = f;
  }
  return out;
}
