// The CUDA backend's plumbing: with a GPU, tensors round-trip host -> device -> host unchanged; without
// one (or in a build without nvcc), asking for device memory is a clear error, not a crash.
import { Tensor, nativeInfo } from '../../bindings/index.js';

const info = nativeInfo();
const hasDevice = info.cuda.devices.length > 0;

describe('CUDA plumbing', () => {
  test('nativeInfo reports whether the CUDA backend was built and its devices', () => {
    expect(typeof info.cuda.built).toBe('boolean');
    expect(Array.isArray(info.cuda.devices)).toBe(true);
    if (info.cuda.built) expect(info.cuda.runtime).toMatch(/^\d+\.\d+$/);
  });

  (hasDevice ? test.skip : test)('without a device, device memory is refused with a clear error', () => {
    expect(() => Tensor.empty('f32', [4, 4], 'cuda')).toThrow(info.cuda.built ? /no CUDA device/ : /no CUDA backend/);
    const t = Tensor.fromArray([1, 2, 3], [3]);
    expect(() => t.to('cuda')).toThrow(/CUDA/);
    expect(t.to('cpu')).toBe(t);
  });

  (hasDevice ? test : test.skip)('with a device, tensors round-trip host -> device -> host', () => {
    const src = Tensor.random([33, 7], 3);
    const dev = src.to('cuda');
    expect(dev.device).toBe('cuda');
    expect(() => dev.data()).toThrow(/device/);
    const back = dev.to('cpu');
    expect(Array.from(back.data())).toEqual(Array.from(src.data()));
    const bf = src.convert('bf16');
    expect(Array.from(bf.to('cuda').to('cpu').data<'bf16'>())).toEqual(Array.from(bf.data<'bf16'>()));
  });
});
