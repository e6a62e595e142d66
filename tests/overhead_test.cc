// The per-op overhead work: onednn::profiler, the fused sparse softmax cross-entropy against
// the composite it replaces in SparseCategoricalCrossentropy, small reductions on Kiln's own
// kernel, and primitive-cache keys.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "tensor/ops/id_table.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/onednn/profiler.h"
#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::rand_tensor;
namespace prof = onednn::profiler;

// What SparseCategoricalCrossentropy(from_logits=true) computed before the fused op.
Tensor composite(const Tensor& logits, const Tensor& labels) {
  Tensor t = one_hot(labels, logits.shape()[1]);
  return reduce_mean(-reduce_sum(t * log_softmax(logits, -1), {-1}));
}

Tensor labels_of(std::vector<int32_t> ids) {
  int64_t n = static_cast<int64_t>(ids.size());
  return Tensor::from_int32(ids, {n});
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) {
      EXPECT_TRUE(std::isnan(a[i])) << "at " << i;
    } else if (std::isinf(b[i])) {
      EXPECT_EQ(a[i], b[i]) << "at " << i;
    } else {
      EXPECT_NEAR(a[i], b[i], tol * (1 + std::fabs(b[i]))) << "at " << i;
    }
  }
}

TEST(SparseSoftmaxCrossEntropy, MatchesTheCompositeForwardAndBackward) {
  Tensor logits = rand_tensor({7, 5}, 11, -4.f, 4.f);
  Tensor labels = labels_of({0, 4, 2, 2, 1, 3, 0});
  GradientTape t1, t2;
  t1.watch(logits);
  t2.watch(logits);
  Tensor fused = sparse_softmax_cross_entropy(logits, labels);
  Tensor ref = composite(logits, labels);
  EXPECT_EQ(fused.shape(), ref.shape());
  expect_close(fused.to_vector(), ref.to_vector(), 1e-6f);
  Tensor g_fused = t1.gradient(fused, logits), g_ref = t2.gradient(ref, logits);
  expect_close(g_fused.to_vector(), g_ref.to_vector(), 1e-6f);
}

TEST(SparseSoftmaxCrossEntropy, InfinitiesAsInTheCompositeAndNanEverywhere) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // -inf away from the label (loss NaN: 0 * -inf), at the label (loss inf), huge finite values.
  for (std::vector<float> row : {std::vector<float>{-inf, 0.f, 1.f}, {0.f, -inf, 1.f}, {1e30f, -1e30f, 0.f}}) {
    Tensor logits = Tensor::from_vector(row, {1, 3});
    Tensor labels = labels_of({1});
    GradientTape t1, t2;
    t1.watch(logits);
    t2.watch(logits);
    Tensor fused = sparse_softmax_cross_entropy(logits, labels), ref = composite(logits, labels);
    expect_close(fused.to_vector(), ref.to_vector(), 1e-6f);
    expect_close(t1.gradient(fused, logits).to_vector(), t2.gradient(ref, logits).to_vector(), 1e-6f);
  }
  // A NaN or +inf logit makes the loss and the row's whole gradient NaN, as in PyTorch (oneDNN's
  // log_softmax, under the composite, turned {0.5, NaN, 1} into {-inf, NaN, -inf}, whose
  // gradient was {0, inf, 0}).
  for (std::vector<float> row : {std::vector<float>{0.5f, nan, 1.f}, {inf, 0.f, 1.f}}) {
    Tensor logits = Tensor::from_vector(row, {1, 3});
    GradientTape tape;
    tape.watch(logits);
    Tensor loss = sparse_softmax_cross_entropy(logits, labels_of({1}));
    EXPECT_TRUE(std::isnan(loss.item()));
    for (float g : tape.gradient(loss, logits).to_vector()) EXPECT_TRUE(std::isnan(g));
  }
}

TEST(SparseSoftmaxCrossEntropy, RejectsBadLabelsAndSecondOrder) {
  Tensor logits = rand_tensor({2, 3}, 12);
  EXPECT_THROW(sparse_softmax_cross_entropy(logits, labels_of({0, 3})), std::out_of_range);
  EXPECT_THROW(sparse_softmax_cross_entropy(logits, labels_of({0})), std::invalid_argument);
  EXPECT_THROW(sparse_softmax_cross_entropy(logits, Tensor::zeros({2})), std::invalid_argument);
  GradientTape outer;
  outer.watch(logits);
  Tensor g;
  {
    GradientTape inner;
    inner.watch(logits);
    g = inner.gradient(sparse_softmax_cross_entropy(logits, labels_of({0, 2})), logits);
  }
  EXPECT_THROW(outer.gradient(reduce_sum(g), logits), std::runtime_error);
}

TEST(SmallReductions, MatchTheDoubleReferenceInBothDtypes) {
  // A bias gradient (batch axis), a row sum (last axis) and everything: Kiln's own kernel.
  Tensor x = rand_tensor({32, 48}, 13);
  std::vector<float> v = x.to_vector();
  std::vector<double> cols(48, 0), rows(32, 0);
  double all = 0;
  for (int r = 0; r < 32; ++r) {
    for (int c = 0; c < 48; ++c) {
      cols[c] += v[r * 48 + c];
      rows[r] += v[r * 48 + c];
      all += v[r * 48 + c];
    }
  }
  for (DType dt : {DType::f32, DType::bf16}) {
    float tol = dt == DType::f32 ? 1e-5f : 3e-2f;
    Tensor xd = cast(x, dt);
    std::vector<float> s0 = reduce_sum(xd, {0}).to_vector(), m1 = reduce_mean(xd, {1}).to_vector();
    for (int c = 0; c < 48; ++c) EXPECT_NEAR(s0[c], cols[c], tol * (1 + std::fabs(cols[c])));
    for (int r = 0; r < 32; ++r) EXPECT_NEAR(m1[r], rows[r] / 48, tol);
    EXPECT_NEAR(reduce_mean(xd).item(), all / (32 * 48), tol);
  }
}

// oneDNN's eltwise_linear on x, as raw output bits.
std::vector<uint16_t> onednn_linear_bits(const Tensor& x, float alpha, float beta) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  auto md = onednn::desc_of(x);
  dnnl::eltwise_forward prim(dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_linear, md, alpha, beta),
      onednn::cpu_engine()));
  prim.execute(onednn::cpu_stream(), {{DNNL_ARG_SRC, onednn::memory_of(x, md)}, {DNNL_ARG_DST, onednn::memory_of(out, md)}});
  onednn::cpu_stream().wait();
  const uint16_t* p = static_cast<const uint16_t*>(out.raw_data());
  return std::vector<uint16_t>(p, p + out.nbytes() / 2);
}

TEST(InlineAffine, GivesOneDnnsResultBitForBit) {
  std::vector<float> v = rand_tensor({4000}, 16, -3.f, 3.f).to_vector();
  const float specials[] = {0.f, -0.f, 1e-40f, -1e-40f, 1e-38f, -1.2e-38f, 3e38f, -3e38f,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (size_t i = 0; i < std::size(specials); ++i) v[i] = specials[i];
  for (size_t i = 10; i < 200; ++i) v[i] *= 1e-37f;  // results near the denormal range
  for (auto [alpha, beta] : {std::pair{1.f / 255, 0.f}, {-1.f, 0.f}, {0.7f, -0.3f}, {0.5f, 1e-38f}}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      Tensor x = cast(Tensor::from_vector(v, {4000}), dt);
      Tensor mine = affine(x, alpha, beta);  // small: Kiln's inline kernel
      std::vector<uint16_t> theirs = onednn_linear_bits(x, alpha, beta);
      const uint16_t* p = static_cast<const uint16_t*>(mine.raw_data());
      int mismatches = 0;
      for (size_t i = 0; i < theirs.size(); ++i) mismatches += p[i] != theirs[i];
      EXPECT_EQ(mismatches, 0) << dtype_name(dt) << " alpha " << alpha << " beta " << beta;
    }
  }
}

TEST(Profiler, CountsPrimitivesAndKernelsOnlyWhileOn) {
  Tensor a = rand_tensor({16, 16}, 14), b = rand_tensor({16, 16}, 15);
  matmul(a, b);  // creates the primitive outside the measurement
  prof::reset();
  matmul(a, b);
  EXPECT_EQ(prof::totals().primitive_calls, 0u);
  prof::set_enabled(true);
  matmul(a, b);
  reduce_sum(a, {0});  // a Kiln kernel
  {
    prof::KernelScope outer;  // a region inside a region is counted once, by the outer one
    prof::KernelScope inner;
  }
  prof::set_enabled(false);
  prof::Totals t = prof::totals();
  EXPECT_EQ(t.primitive_calls, 1u);
  EXPECT_GT(t.primitive_ms, 0.0);
  EXPECT_EQ(t.kernel_calls, 2u);
  ASSERT_FALSE(t.by_kind.empty());
  EXPECT_EQ(t.by_kind.front().kind, "matmul");
  EXPECT_EQ(t.by_kind.back().kind, "kiln kernel");
  prof::reset();
  EXPECT_EQ(prof::totals().primitive_calls, 0u);
}

// A layout oneDNN cannot describe (a step slice of the last axis interleaves the strides) must
// be refused on every lookup. The memory-object cache once stored the key before building the
// memory, so after a refused build the slot answered the next lookup of that key with the
// memory of whatever tensor had held it: a strided view read through another descriptor.
TEST(MemoryCache, ARefusedLayoutLeavesNoSlotBehind) {
  // Occupy every slot of both ways first, so the refused key's slot holds another memory.
  std::vector<Tensor> fillers;
  for (int i = 0; i < 2048; ++i) {
    fillers.push_back(Tensor::zeros({1 + i % 64, 1 + i / 64}));
    onednn::memory_of(fillers.back());
  }
  Tensor big = Tensor::zeros({300, 500});
  Tensor view = slice(big, 1, 1, 500, 3);  // [300, 167], strides [500, 3]
  for (int attempt = 0; attempt < 3; ++attempt) {
    EXPECT_THROW(onednn::memory_of(view), std::invalid_argument) << "attempt " << attempt;
  }
  // And an op that reads such a view copies the right elements, however often it sees it.
  std::vector<float> values(300 * 500);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 9973);
  Tensor source = Tensor::from_vector(values, {300, 500});
  Tensor strided = slice(source, 1, 1, 500, 3);
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<float> got = contiguous(strided).to_vector();
    ASSERT_EQ(got.size(), 300u * 167u);
    size_t wrong = 0;
    for (int r = 0; r < 300; ++r) {
      for (int c = 0; c < 167; ++c) wrong += got[r * 167 + c] != values[r * 500 + 1 + 3 * c];
    }
    EXPECT_EQ(wrong, 0u) << "attempt " << attempt;
  }
}

TEST(PrimitiveCacheKey, DistinguishesExactValuesAndDescribesItself) {
  using onednn::KeyBuilder;
  // The old text keys printed floats with six decimals, so these two were one key.
  EXPECT_NE(KeyBuilder("eltwise").add(1e-7f).view(), KeyBuilder("eltwise").add(2e-7f).view());
  EXPECT_NE(KeyBuilder("a").add(int64_t{12}).view(), KeyBuilder("a").add(Shape{12}).view());
  Tensor t = Tensor::zeros({2, 3});
  KeyBuilder k("matmul");
  k.add(t).add(int64_t{7}).add(std::string("x"));
  EXPECT_EQ(k.describe(), "matmul|f32[2, 3]|7|x");
  KeyBuilder long_key("long");  // past the inline buffer: moves to the heap, still one key
  for (int i = 0; i < 100; ++i) long_key.add(int64_t{i});
  KeyBuilder copy = long_key;
  EXPECT_EQ(copy.view(), long_key.view());
  EXPECT_NE(long_key.describe().find("|99"), std::string::npos);
}

// Regression: the key once held only dims and blocking, so an int8 weight layout with s8s8
// compensation and the same layout without shared one reorder, and packing the second wrote
// the first's compensation (4 bytes per output channel) past its buffer (MobileNetV3's int8
// plan: a 1x1 expand conv on s8 input, then the squeeze-excite 1x1 conv of the same shape on
// u8 input).
TEST(PrimitiveCacheKey, SeparatesLayoutsThatDifferOnlyInCompensationOrPadding) {
  using onednn::KeyBuilder;
  using tag = dnnl::memory::format_tag;
  const dnnl::memory::dims dims{48, 16, 1, 1};
  dnnl::memory::desc plain(dims, dnnl::memory::data_type::s8, tag::AcdB16a4b), compensated = plain;
  compensated.data.extra.flags = dnnl_memory_extra_flag_compensation_conv_s8s8;
  compensated.data.extra.compensation_mask = 1;  // per output channel
  ASSERT_GT(compensated.get_size(), plain.get_size());
  EXPECT_NE(KeyBuilder("reorder").add(plain).view(), KeyBuilder("reorder").add(compensated).view());
  dnnl::memory::desc padded({40, 16, 1, 1}, dnnl::memory::data_type::s8, tag::AcdB16a4b),
      unpadded({40, 16, 1, 1}, dnnl::memory::data_type::s8, tag::AcdB16a4b);
  unpadded.data.padded_dims[0] = 40;  // not a layout oneDNN makes; only the key matters here
  EXPECT_NE(KeyBuilder("d").add(padded).view(), KeyBuilder("d").add(unpadded).view());
  EXPECT_NE(KeyBuilder("d").add(compensated).describe().find("x1m1"), std::string::npos)
      << KeyBuilder("d").add(compensated).describe();

  // Both reorders through the cache, compensated first: the second writes only its own bytes.
  const auto& engine = onednn::cpu_engine();
  dnnl::memory::desc hwio(dims, dnnl::memory::data_type::s8, tag::cdba);
  std::vector<int8_t> kernel(48 * 16, 3);
  dnnl::memory from(hwio, engine, kernel.data());
  std::vector<uint8_t> big(compensated.get_size());
  onednn::reorder("packing_test", from, dnnl::memory(compensated, engine, big.data()));
  constexpr size_t kGuard = 1024;
  std::vector<uint8_t> small(plain.get_size() + kGuard, 0xAB);
  onednn::reorder("packing_test", from, dnnl::memory(plain, engine, small.data()));
  size_t touched = 0;
  for (size_t i = plain.get_size(); i < small.size(); ++i) touched += small[i] != 0xAB;
  EXPECT_EQ(touched, 0u) << "the reorder wrote past the " << plain.get_size() << "-byte uncompensated layout";
}

TEST(IdMap, AgreesWithStdMapThroughInsertsErasesAndGrowth) {
  autograd::IdMap<int> flat;
  std::map<uint64_t, int> ref;
  uint64_t state = 7;
  for (int step = 0; step < 20000; ++step) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t id = 1 + (state >> 33) % 500;  // few keys: long probe runs, many erases
    if ((state >> 20) % 3 == 0) {
      EXPECT_EQ(flat.erase(id), ref.erase(id) == 1);
    } else {
      auto [v, inserted] = flat.try_emplace(id, step);
      auto [it, ref_inserted] = ref.try_emplace(id, step);
      EXPECT_EQ(inserted, ref_inserted);
      EXPECT_EQ(*v, it->second);
    }
    ASSERT_EQ(flat.size(), ref.size());
  }
  for (uint64_t id = 1; id <= 500; ++id) {
    const int* v = flat.find(id);
    auto it = ref.find(id);
    ASSERT_EQ(v != nullptr, it != ref.end()) << id;
    if (v) EXPECT_EQ(*v, it->second);
  }
  autograd::IdList ids;
  for (uint64_t i = 1; i <= 9; ++i) ids.push_back(i * 10);  // past the inline four
  ASSERT_EQ(ids.size(), 9u);
  EXPECT_EQ(ids[0], 10u);
  EXPECT_EQ(ids[8], 90u);
}

}  // namespace
}  // namespace kiln
