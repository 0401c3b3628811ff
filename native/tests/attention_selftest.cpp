// Self-test and benchmark of the CPU attention kernel (cpu/attention.h).
//
//   attention_selftest            correctness on every ISA this CPU/build supports (exit 1 on failure)
//   attention_selftest --quick    fewer / smaller cases
//   attention_selftest --bench [reps]   timings (best of reps) at T = 2048 for SmolLM2-135M and
//                                       Qwen2.5-0.5B head shapes, on the active ISA
//
// Correctness: the forward is compared with a naive fp64 reference that builds the full T×T score
// matrix; the backward with the fp64 reference gradients of the loss sum(out∘R) (dout = R), and those
// reference gradients are themselves checked against central finite differences in double. Errors are
// reported as max |ours - ref| and that divided by max |ref| (per tensor).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "cpu/attention_prelude.h"  // attention_set_dq_scratch_budget (test hook)
#include "cpu/isa.h"
#include "cpu/threadpool.h"

using sw::cpu::AttentionShape;

namespace {

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    double u = uniform(), v = uniform();
    if (u < 1e-300) u = 1e-300;
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
};

// ---------------------------------------------------------------------------------------------
// fp64 reference: full score matrix per (b, h).
//   q [B,T,Hq,D], k/v [B,T,Hkv,D], seg [B,T] or empty; out [B,T,Hq,D], lse [B,Hq,T]
struct Ref {
  std::vector<double> out, lse, dq, dk, dv;
};

bool visible(const AttentionShape& s, const int32_t* seg, int64_t b, int64_t i, int64_t j) {
  if (s.causal && j > i) return false;
  if (seg && seg[b * s.T + i] != seg[b * s.T + j]) return false;
  return true;
}

// Forward (and, with dout, backward) in double. Shapes above; dout [B,T,Hq,D].
void reference(const AttentionShape& s, const std::vector<double>& q, const std::vector<double>& k,
               const std::vector<double>& v, const int32_t* seg, const std::vector<double>* dout, Ref& r) {
  const int64_t B = s.B, T = s.T, Hq = s.Hq, Hkv = s.Hkv, D = s.D, G = Hq / Hkv;
  r.out.assign(B * T * Hq * D, 0.0);
  r.lse.assign(B * Hq * T, 0.0);
  if (dout) {
    r.dq.assign(q.size(), 0.0);
    r.dk.assign(k.size(), 0.0);
    r.dv.assign(v.size(), 0.0);
  }
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> P(T * T), dP(T * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / G;
      auto Q = [&](int64_t t, int64_t d) { return q[((b * T + t) * Hq + h) * D + d]; };
      auto K = [&](int64_t t, int64_t d) { return k[((b * T + t) * Hkv + g) * D + d]; };
      auto Vv = [&](int64_t t, int64_t d) { return v[((b * T + t) * Hkv + g) * D + d]; };
      for (int64_t i = 0; i < T; ++i) {
        double mx = ninf;
        for (int64_t j = 0; j < T; ++j) {
          double sc = ninf;
          if (visible(s, seg, b, i, j)) {
            sc = 0;
            for (int64_t d = 0; d < D; ++d) sc += Q(i, d) * K(j, d);
            sc *= s.scale;
          }
          P[i * T + j] = sc;
          mx = std::max(mx, sc);
        }
        double sum = 0;
        for (int64_t j = 0; j < T; ++j) {
          const double e = mx == ninf ? 0.0 : std::exp(P[i * T + j] - mx);
          P[i * T + j] = e;
          sum += e;
        }
        r.lse[(b * Hq + h) * T + i] = sum > 0 ? mx + std::log(sum) : ninf;
        for (int64_t j = 0; j < T; ++j) P[i * T + j] = sum > 0 ? P[i * T + j] / sum : 0.0;
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t j = 0; j < T; ++j) o += P[i * T + j] * Vv(j, d);
          r.out[((b * T + i) * Hq + h) * D + d] = o;
        }
      }
      if (!dout) continue;
      auto dO = [&](int64_t t, int64_t d) { return (*dout)[((b * T + t) * Hq + h) * D + d]; };
      for (int64_t i = 0; i < T; ++i) {
        double rowdot = 0;
        for (int64_t j = 0; j < T; ++j) {
          double x = 0;
          for (int64_t d = 0; d < D; ++d) x += dO(i, d) * Vv(j, d);
          dP[i * T + j] = x;
          rowdot += P[i * T + j] * x;
        }
        for (int64_t j = 0; j < T; ++j) dP[i * T + j] = P[i * T + j] * (dP[i * T + j] - rowdot);  // dS
      }
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          const double ds = dP[i * T + j] * s.scale, p = P[i * T + j];
          if (ds == 0.0 && p == 0.0) continue;
          for (int64_t d = 0; d < D; ++d) {
            r.dq[((b * T + i) * Hq + h) * D + d] += ds * K(j, d);
            r.dk[((b * T + j) * Hkv + g) * D + d] += ds * Q(i, d);
            r.dv[((b * T + j) * Hkv + g) * D + d] += p * dO(i, d);
          }
        }
    }
}

double loss(const AttentionShape& s, const std::vector<double>& q, const std::vector<double>& k,
            const std::vector<double>& v, const int32_t* seg, const std::vector<double>& R) {
  Ref r;
  reference(s, q, k, v, seg, nullptr, r);
  double L = 0;
  for (size_t i = 0; i < R.size(); ++i) L += r.out[i] * R[i];
  return L;
}

// ---------------------------------------------------------------------------------------------
struct Err {
  double abs = 0, ref_max = 0;
  bool nan = false;
  double rel() const { return ref_max > 0 ? abs / ref_max : abs; }
};

Err compare(const std::vector<float>& got, const std::vector<double>& want) {
  Err e;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]) && !(std::isinf(want[i]) && got[i] == want[i])) e.nan = true;
    if (std::isinf(want[i])) continue;
    e.abs = std::max(e.abs, std::fabs(static_cast<double>(got[i]) - want[i]));
    e.ref_max = std::max(e.ref_max, std::fabs(want[i]));
  }
  return e;
}

struct Case {
  int64_t B, T, Hq, Hkv, D;
  bool causal;
  int seg_mode;  // 0 none, 1 packed (sorted runs), 2 scattered (unsorted ids)
  double qscale = 1.0;  // > 1: peaky softmax
  float scale = std::numeric_limits<float>::quiet_NaN();  // NaN: 1/sqrt(D)
  bool fd = false;      // finite-difference check of the reference gradients
};

struct Totals {
  double fwd = 0, lse = 0, dq = 0, dk = 0, dv = 0, fd = 0;  // max |ours - ref| / max |ref|
  double fd_ours = 0;                                        // our grads vs finite differences
  double abs_fwd = 0, abs_grad = 0;                          // max |ours - ref| (out; dq, dk, dv)
  int failures = 0, cases = 0;
};

std::string describe(const Case& c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "B=%lld T=%lld Hq=%lld Hkv=%lld D=%lld %s seg=%d qx=%g", (long long)c.B,
                (long long)c.T, (long long)c.Hq, (long long)c.Hkv, (long long)c.D, c.causal ? "causal" : "full",
                c.seg_mode, c.qscale);
  return buf;
}

// Reference values are computed once per case and reused for each ISA / thread count / dQ mode.
struct Prepared {
  AttentionShape s;
  std::vector<float> q, k, v, R;
  std::vector<int32_t> seg;
  Ref ref;
  double fd_err = 0;  // reference gradients vs finite differences
  struct Fd {
    int tensor;  // 0 q, 1 k, 2 v
    int64_t index;
    double value;  // dL/dx by central differences
  };
  std::vector<Fd> fd;
};

Prepared prepare(const Case& c, uint64_t seed) {
  Prepared p;
  p.s = AttentionShape{c.B, c.T, c.Hq, c.Hkv, c.D, !std::isnan(c.scale) ? c.scale : float(1.0 / std::sqrt(double(c.D))),
                       c.causal};
  Rng rng(seed);
  auto fill = [&](std::vector<float>& x, int64_t n, double mul) {
    x.resize(n);
    for (auto& e : x) e = static_cast<float>(rng.normal() * mul);
  };
  fill(p.q, c.B * c.T * c.Hq * c.D, c.qscale);
  fill(p.k, c.B * c.T * c.Hkv * c.D, 1.0);
  fill(p.v, c.B * c.T * c.Hkv * c.D, 1.0);
  fill(p.R, c.B * c.T * c.Hq * c.D, 1.0);
  if (c.seg_mode) {
    p.seg.resize(c.B * c.T);
    for (int64_t b = 0; b < c.B; ++b) {
      int32_t id = 0;
      for (int64_t t = 0; t < c.T; ++t) {
        if (c.seg_mode == 1) {
          if (t > 0 && rng.below(c.T < 64 ? 5 : 150) == 0) ++id;  // runs of random length
          p.seg[b * c.T + t] = id;
        } else {
          p.seg[b * c.T + t] = static_cast<int32_t>(rng.below(3));
        }
      }
    }
  }
  const int32_t* seg = c.seg_mode ? p.seg.data() : nullptr;
  std::vector<double> qd(p.q.begin(), p.q.end()), kd(p.k.begin(), p.k.end()), vd(p.v.begin(), p.v.end()),
      Rd(p.R.begin(), p.R.end());
  reference(p.s, qd, kd, vd, seg, &Rd, p.ref);
  if (c.fd) {
    // Central differences of L = sum(out∘R) at random coordinates of q, k and v, in double.
    const double h = 1e-5;
    double worst = 0;
    std::vector<double>* xs[3] = {&qd, &kd, &vd};
    const std::vector<double>* gs[3] = {&p.ref.dq, &p.ref.dk, &p.ref.dv};
    for (int t = 0; t < 3; ++t)
      for (int n = 0; n < 12; ++n) {
        std::vector<double>& x = *xs[t];
        const int64_t i = rng.below(static_cast<int64_t>(x.size()));
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss(p.s, qd, kd, vd, seg, Rd);
        x[i] = x0 - h;
        const double lm = loss(p.s, qd, kd, vd, seg, Rd);
        x[i] = x0;
        const double fd = (lp - lm) / (2 * h);
        p.fd.push_back({t, i, fd});
        worst = std::max(worst, std::fabs(fd - (*gs[t])[i]) / std::max(1.0, std::fabs(fd)));
      }
    p.fd_err = worst;
  }
  return p;
}

// dQ strategies of the backward, selected through its scratch budget.
enum DqMode { kDqScratch = 0, kDqRecompute = 1, kDqWaves = 2 };
const char* dq_mode_name(int m) { return m == kDqScratch ? "dq-scratch" : m == kDqRecompute ? "dq-recompute" : "dq-waves"; }

bool run_case(const Case& c, const Prepared& p, sw::cpu::Isa isa, int threads, int dq_mode, Totals& tot,
              bool verbose) {
  sw::cpu::force_isa(isa);
  sw::cpu::set_num_threads(threads);
  int64_t budget = int64_t(256) << 20;  // the default
  if (dq_mode == kDqRecompute) budget = 0;
  // Room for the per-thread scratch of one (b, kv head) group (two at most with narrower vectors):
  // several waves of groups whenever B·Hkv > 1.
  if (dq_mode == kDqWaves) budget = c.T * (c.Hq / c.Hkv) * ((c.D + 15) / 16 * 16) * 4 * threads + 1;
  sw::cpu::attention_set_dq_scratch_budget(budget);
  const int32_t* seg = c.seg_mode ? p.seg.data() : nullptr;
  const auto& s = p.s;
  // Outputs start as NaN so that anything the kernel fails to write shows up.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> out(p.q.size(), nan), lse(s.B * s.Hq * s.T, nan);
  sw::cpu::attention_forward(s, p.q.data(), p.k.data(), p.v.data(), seg, out.data(), lse.data());
  std::vector<float> dq(p.q.size(), nan), dk(p.k.size(), nan), dv(p.v.size(), nan);
  sw::cpu::attention_backward(s, p.q.data(), p.k.data(), p.v.data(), seg, out.data(), lse.data(), p.R.data(),
                              dq.data(), dk.data(), dv.data());
  // Our gradients against the finite differences directly (scaled like compare()).
  double fd_ours = 0;
  for (const auto& f : p.fd) {
    const std::vector<float>& g = f.tensor == 0 ? dq : f.tensor == 1 ? dk : dv;
    const std::vector<double>& r = f.tensor == 0 ? p.ref.dq : f.tensor == 1 ? p.ref.dk : p.ref.dv;
    double rmax = 0;
    for (double x : r) rmax = std::max(rmax, std::fabs(x));
    fd_ours = std::max(fd_ours, std::fabs(g[f.index] - f.value) / (rmax > 0 ? rmax : 1.0));
  }
  const Err eo = compare(out, p.ref.out), el = compare(lse, p.ref.lse), eq = compare(dq, p.ref.dq),
            ek = compare(dk, p.ref.dk), ev = compare(dv, p.ref.dv);
  // fp32 with D-long dot products and T-long sums: relative to the largest reference value.
  // Observed worst: ~3e-6 forward, ~5e-6 backward; sharper softmax (qscale) amplifies rounding.
  const double tol_fwd = 1e-5 * std::max(1.0, c.qscale), tol_bwd = 2e-5 * std::max(1.0, c.qscale);
  const bool ok = !eo.nan && !el.nan && !eq.nan && !ek.nan && !ev.nan && eo.rel() < tol_fwd && el.rel() < tol_fwd &&
                  eq.rel() < tol_bwd && ek.rel() < tol_bwd && ev.rel() < tol_bwd && p.fd_err < 1e-5 &&
                  fd_ours < tol_bwd;
  tot.fwd = std::max(tot.fwd, eo.rel());
  tot.lse = std::max(tot.lse, el.rel());
  tot.dq = std::max(tot.dq, eq.rel());
  tot.dk = std::max(tot.dk, ek.rel());
  tot.dv = std::max(tot.dv, ev.rel());
  tot.fd = std::max(tot.fd, p.fd_err);
  tot.fd_ours = std::max(tot.fd_ours, fd_ours);
  tot.abs_fwd = std::max(tot.abs_fwd, eo.abs);
  tot.abs_grad = std::max({tot.abs_grad, eq.abs, ek.abs, ev.abs});
  tot.cases++;
  if (!ok) tot.failures++;
  if (!ok || verbose)
    std::printf("%s %-7s thr=%d %-12s %s: out %.2e (abs %.2e) lse %.2e dq %.2e dk %.2e dv %.2e%s fd %.1e/%.1e\n",
                ok ? "ok  " : "FAIL", sw::cpu::isa_name(isa), threads, dq_mode_name(dq_mode),
                describe(c).c_str(), eo.rel(), eo.abs, el.rel(), eq.rel(), ek.rel(), ev.rel(),
                (eo.nan || el.nan || eq.nan || ek.nan || ev.nan) ? " NaN!" : "", p.fd_err, fd_ours);
  return ok;
}

// ---------------------------------------------------------------------------------------------
int selftest(bool quick) {
  std::vector<Case> cases;
  const int64_t Ts[] = {1, 7, 33, 130};
  const int64_t Ds[] = {8, 24, 64, 80, 128};
  const int64_t heads[][2] = {{2, 2}, {3, 1}, {6, 2}, {7, 1}, {14, 2}};
  int n = 0;
  // A grid over T × D × heads (B, causality, segments and softmax sharpness rotate through it).
  for (int64_t T : Ts)
    for (int64_t D : Ds)
      for (auto& hh : heads) {
        ++n;
        if (quick && n % 3) continue;
        Case c{1 + n % 3, T, hh[0], hh[1], D, n % 4 != 0, n % 5 == 1 ? 1 : (n % 7 == 2 ? 2 : 0)};
        if (n % 6 == 0) c.qscale = 4.0;
        c.fd = T <= 33 && n % 4 == 1;
        cases.push_back(c);
      }
  // Long sequences, the model shapes at reduced T, and packed sequences across tile boundaries.
  cases.push_back(Case{1, 1000, 3, 1, 64, true, 0});
  cases.push_back(Case{2, 1000, 6, 2, 80, true, 1});
  if (!quick) {
    cases.push_back(Case{1, 1000, 7, 1, 24, false, 0});
    cases.push_back(Case{1, 1000, 14, 2, 64, true, 2});
    cases.push_back(Case{1, 300, 9, 3, 64, true, 1, 8.0});
    cases.push_back(Case{2, 257, 14, 2, 128, true, 0});
  }
  Case fd_big{2, 33, 6, 2, 24, true, 1};
  fd_big.fd = true;
  cases.push_back(fd_big);
  Case custom_scale{1, 65, 3, 3, 8, true, 0};
  custom_scale.scale = 0.9f;
  custom_scale.fd = true;
  cases.push_back(custom_scale);
  custom_scale.scale = 0.0f;  // uniform attention over the visible keys
  custom_scale.seg_mode = 1;
  cases.push_back(custom_scale);
  custom_scale.scale = -0.7f;  // any finite scale: masking must not depend on its sign
  custom_scale.causal = false;
  custom_scale.seg_mode = 2;
  cases.push_back(custom_scale);

  std::vector<sw::cpu::Isa> isas;
  for (int i = 0; i <= static_cast<int>(sw::cpu::detected_isa()); ++i) isas.push_back(static_cast<sw::cpu::Isa>(i));
  std::printf("detected ISA: %s; %zu cases\n", sw::cpu::isa_name(sw::cpu::detected_isa()), cases.size());

  Totals tot;
  const int default_threads = sw::cpu::num_threads();
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    const Prepared p = prepare(c, 1234 + ci);
    for (auto isa : isas) {
      run_case(c, p, isa, default_threads, kDqScratch, tot, false);
      // Other thread counts (3 > cores: per-thread dQ scratch with 3 owners) and the other dQ
      // strategies, rotating over the cases to keep the run short.
      if (ci % 3 == 0) run_case(c, p, isa, 1, kDqRecompute, tot, false);
      if (ci % 3 == 1) run_case(c, p, isa, 3, kDqWaves, tot, false);
      if (ci % 3 == 2) run_case(c, p, isa, 3, kDqRecompute, tot, false);
      if (ci % 4 == 3) run_case(c, p, isa, 2, kDqWaves, tot, false);
    }
  }
  sw::cpu::set_num_threads(default_threads);
  std::printf("%d runs, %d failed. worst error / max|ref|: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e; "
              "worst abs error: out %.2e grads %.2e; finite differences vs reference grads %.2e, vs ours %.2e\n",
              tot.cases, tot.failures, tot.fwd, tot.lse, tot.dq, tot.dk, tot.dv, tot.abs_fwd, tot.abs_grad, tot.fd,
              tot.fd_ours);
  return tot.failures ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void bench(int reps) {
  struct Shape {
    const char* name;
    int64_t Hq, Hkv, D;
  } shapes[] = {{"SmolLM2-135M", 9, 3, 64}, {"Qwen2.5-0.5B", 14, 2, 64}};
  const int64_t B = 1, T = 2048;
  std::printf("isa %s, %d threads, B=%lld T=%lld causal, best of %d\n", sw::cpu::isa_name(sw::cpu::active_isa()),
              sw::cpu::num_threads(), (long long)B, (long long)T, reps);
  for (auto& sh : shapes) {
    AttentionShape s{B, T, sh.Hq, sh.Hkv, sh.D, float(1.0 / std::sqrt(double(sh.D))), true};
    Rng rng(7);
    std::vector<float> q(B * T * sh.Hq * sh.D), k(B * T * sh.Hkv * sh.D), v(k.size()), dout(q.size());
    for (auto* x : {&q, &k, &v, &dout})
      for (auto& e : *x) e = static_cast<float>(rng.normal());
    std::vector<float> out(q.size()), lse(B * sh.Hq * T), dq(q.size()), dk(k.size()), dv(v.size());
    double best_f = 1e30, best_fb = 1e30;
    for (int r = 0; r < reps; ++r) {
      const double t0 = now_ms();
      sw::cpu::attention_forward(s, q.data(), k.data(), v.data(), nullptr, out.data(), lse.data());
      const double t1 = now_ms();
      sw::cpu::attention_backward(s, q.data(), k.data(), v.data(), nullptr, out.data(), lse.data(), dout.data(),
                                  dq.data(), dk.data(), dv.data());
      const double t2 = now_ms();
      best_f = std::min(best_f, t1 - t0);
      best_fb = std::min(best_fb, t2 - t0);
    }
    // Useful flops: causal halves the 2·T²·D products (forward 2, backward 5).
    const double flop_f = 2.0 * 2.0 * T * T * sh.D * sh.Hq * B / 2, flop_b = flop_f * 2.5;
    std::printf("%-13s Hq=%lld Hkv=%lld D=%lld: forward %.1f ms (%.1f GFLOP/s)  forward+backward %.1f ms "
                "(%.1f GFLOP/s)\n",
                sh.name, (long long)sh.Hq, (long long)sh.Hkv, (long long)sh.D, best_f, flop_f / best_f * 1e-6,
                best_fb, (flop_f + flop_b) / best_fb * 1e-6);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--bench") {
    bench(argc > 2 ? std::atoi(argv[2]) : 5);
    return 0;
  }
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  return selftest(quick);
}
