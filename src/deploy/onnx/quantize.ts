// int8 weight quantization as onnxruntime's quantize_dynamic does it for MatMul weights with
// per_channel=True and weight_type=QInt8: symmetric (zero point 0), one scale per output column,
// scale = max |w| / 127, q = round(w / scale) clamped to [-127, 127] (round half to even, as numpy rounds).

export interface QuantizedMatrix {
  /** int8 values, same layout as the input */
  values: Int8Array;
  /** one f32 scale per column */
  scales: Float32Array;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** w [rows, cols] row-major (a MatMul weight [in, out]): per-column symmetric int8. */
export function quantizeInt8PerChannel(w: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const maxAbs = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(w[o + c]);
      if (a > maxAbs[c]) maxAbs[c] = a;
    }
  }
  const scales = new Float32Array(cols);
  for (let c = 0; c < cols; c++) scales[c] = maxAbs[c] > 0 ? maxAbs[c] / 127 : 1;
  const values = new Int8Array(w.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) values[o + c] = Math.max(-127, Math.min(127, roundHalfEven(w[o + c] / scales[c])));
  }
  return { values, scales };
}
