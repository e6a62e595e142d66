// A character-level causal transformer language model, trained on the GNU GPL version 3 text
// that Debian's base-files package installs (always present) at
// /usr/share/common-licenses/GPL-3, then sampled from.
//   bazel run -c opt //examples:char_lm -- [--steps 1500] [--smoke] [--temperature 0.8]
//
// The model is a GPT-style decoder in Keras layers (nn/applications/char_transformer_lm.h, also
// the `lm` workload of //benchmarks:compare): Embedding for the characters plus a learned
// position embedding (an Embedding over the positions 0..T-1, the second input), then pre-norm
// blocks x += MultiHeadAttention(LN(x), use_causal_mask), x += Dense(Dense(LN(x), gelu)), a final
// LayerNormalization and a Dense to the vocabulary; sparse categorical cross-entropy over every
// position.
//
// The PyTorch twin (examples/char_lm_torch_twin.py) trains the same model from the same
// initial weights on the same batches: --save_initial DIR writes the weights (.npy, with a
// manifest), --initial_weights DIR loads them, --pytorch_adam uses torch.optim.Adam's
// convention (epsilon 1e-8 outside the bias correction), and --losses_out FILE writes the
// loss of every step. Batches follow a recipe both sides implement (batch_starts below).
// --smoke is the twin comparison's size: dim 32, 4 heads, 2 blocks, 32 characters, batch 8,
// 100 steps (examples/examples_test.cc compares it with examples/testdata/char_lm).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/files.h"
#include "data/npy.h"
#include "examples/example_flags.h"
#include "kiln.h"
#include "nn/applications/char_transformer_lm.h"

namespace {

using namespace kiln;
using namespace kiln::nn;

struct LmConfig {
  int64_t dim, heads, blocks, seq, batch, steps;
  float learning_rate;
};

// splitmix64 (Steele, Lea and Flood): the batch recipe's and the sampler's generator, a few
// lines that the Python twin repeats exactly.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The text as indices into its sorted distinct bytes.
struct Corpus {
  std::string vocab;
  std::vector<int32_t> ids;
};

Corpus load_corpus(const std::string& path, int64_t seq) {
  std::string text = base::read_file(path);
  Corpus c;
  bool seen[256] = {};
  for (unsigned char ch : text) seen[ch] = true;
  int32_t index_of[256];
  for (int b = 0; b < 256; ++b) {
    if (!seen[b]) continue;
    index_of[b] = static_cast<int32_t>(c.vocab.size());
    c.vocab.push_back(static_cast<char>(b));
  }
  for (unsigned char ch : text) c.ids.push_back(index_of[ch]);
  if (static_cast<int64_t>(c.ids.size()) < seq + 2) {
    throw std::invalid_argument("corpus " + path + " has " + std::to_string(c.ids.size()) +
                                " characters; training windows of " + std::to_string(seq) + " need at least " +
                                std::to_string(seq + 2));
  }
  return c;
}

// Batch recipe: one splitmix64 stream from the data seed; row r of step s starts at the next
// draw modulo (characters - seq), rows in order, steps in order. x is the window, y the window
// shifted by one.
struct Batch {
  Tensor x, y;
};
Batch next_batch(const Corpus& c, const LmConfig& cfg, uint64_t& stream) {
  const int64_t starts = static_cast<int64_t>(c.ids.size()) - cfg.seq;
  std::vector<int32_t> x(cfg.batch * cfg.seq), y(cfg.batch * cfg.seq);
  for (int64_t r = 0; r < cfg.batch; ++r) {
    const int64_t start = static_cast<int64_t>(splitmix64(stream) % static_cast<uint64_t>(starts));
    for (int64_t t = 0; t < cfg.seq; ++t) {
      x[r * cfg.seq + t] = c.ids[start + t];
      y[r * cfg.seq + t] = c.ids[start + t + 1];
    }
  }
  return {Tensor::from_int32(x, {cfg.batch, cfg.seq}), Tensor::from_int32(y, {cfg.batch, cfg.seq})};
}

// Every variable as DIR/NNN.npy, and DIR/manifest.txt with "NNN.npy name" per line.
void save_initial(const Model& model, const std::string& dir) {
  std::ostringstream manifest;
  int i = 0;
  for (const Variable& v : model.variables()) {
    char file[32];
    std::snprintf(file, sizeof file, "%03d.npy", i++);
    data::write_npy(dir + "/" + file, v.value());
    manifest << file << " " << v.name() << "\n";
  }
  base::write_file_atomically(dir + "/manifest.txt", manifest.str());
}

void load_initial(const Model& model, const std::string& dir) {
  std::istringstream manifest(base::read_file(dir + "/manifest.txt"));
  std::vector<std::pair<std::string, std::string>> entries;
  for (std::string file, name; manifest >> file >> name;) entries.emplace_back(file, name);
  std::vector<Variable> vars = model.variables();
  if (entries.size() != vars.size()) {
    throw std::invalid_argument(dir + "/manifest.txt lists " + std::to_string(entries.size()) +
                                " weights; the model has " + std::to_string(vars.size()));
  }
  for (size_t i = 0; i < vars.size(); ++i) {
    if (entries[i].second != vars[i].name()) {
      throw std::invalid_argument(dir + "/manifest.txt line " + std::to_string(i + 1) + " names '" + entries[i].second +
                                  "'; the model's weight there is '" + vars[i].name() + "'");
    }
    Tensor t = data::read_npy(dir + "/" + entries[i].first);
    if (t.shape() != vars[i].shape()) {
      throw std::invalid_argument(dir + "/" + entries[i].first + " holds " + t.describe() + " for '" + vars[i].name() +
                                  "' of shape " + shape_str(vars[i].shape()));
    }
    vars[i].assign(t);
  }
}

// Characters drawn from softmax(logits / temperature) at the last position of the context
// (the model is causal, so what follows it in the window does not matter).
std::string generate(Model& model, const Corpus& c, const LmConfig& cfg, const std::string& prompt, int64_t count,
                     float temperature, uint64_t seed) {
  std::vector<int32_t> context;
  for (char ch : prompt) {
    size_t at = c.vocab.find(ch);
    if (at == std::string::npos) {
      throw std::invalid_argument(std::string("--prompt holds the character '") + ch + "', which the corpus has not");
    }
    context.push_back(static_cast<int32_t>(at));
  }
  if (context.empty()) throw std::invalid_argument("--prompt must not be empty");
  if (!(temperature > 0)) throw std::invalid_argument("--temperature must be > 0, got " + std::to_string(temperature));
  std::string out;
  uint64_t stream = seed;
  const Tensor where = applications::lm_positions(1, cfg.seq);
  for (int64_t n = 0; n < count; ++n) {
    const int64_t used = std::min<int64_t>(cfg.seq, static_cast<int64_t>(context.size()));
    std::vector<int32_t> window(cfg.seq, 0);
    std::copy(context.end() - used, context.end(), window.begin());
    Tensor logits = model.call({Tensor::from_int32(window, {1, cfg.seq}), where}, false)[0];
    std::vector<float> row = slice(reshape(logits, {cfg.seq, -1}), 0, used - 1, used).to_vector();
    float top = *std::max_element(row.begin(), row.end());
    double total = 0;
    for (float& r : row) total += (r = std::exp((r - top) / temperature));
    double u = static_cast<double>(splitmix64(stream) >> 11) * 0x1.0p-53 * total;
    int32_t pick = static_cast<int32_t>(row.size()) - 1;
    for (size_t k = 0; k < row.size(); ++k) {
      if ((u -= row[k]) < 0) {
        pick = static_cast<int32_t>(k);
        break;
      }
    }
    context.push_back(pick);
    out.push_back(c.vocab[pick]);
  }
  return out;
}

float float_flag(int argc, char** argv, const std::string& name, float fallback) {
  std::string v = examples::flag(argc, argv, name, "");
  if (v.empty()) return fallback;
  try {
    return std::stof(v);
  } catch (const std::exception&) {
    throw std::invalid_argument("--" + name + " expects a number, got '" + v + "'");
  }
}

}  // namespace

int main(int argc, char** argv) {
  cpu::apply_best_known_config(argc, argv);
  try {
    const bool smoke = examples::switch_flag(argc, argv, "smoke");
    LmConfig cfg = smoke ? LmConfig{32, 4, 2, 32, 8, 100, 3e-3f} : LmConfig{128, 4, 4, 64, 32, 1500, 2e-3f};
    cfg.dim = examples::int_flag(argc, argv, "dim", cfg.dim);
    cfg.heads = examples::int_flag(argc, argv, "heads", cfg.heads);
    cfg.blocks = examples::int_flag(argc, argv, "blocks", cfg.blocks);
    cfg.seq = examples::int_flag(argc, argv, "seq", cfg.seq);
    cfg.batch = examples::int_flag(argc, argv, "batch", cfg.batch);
    cfg.steps = examples::int_flag(argc, argv, "steps", cfg.steps);
    cfg.learning_rate = float_flag(argc, argv, "learning_rate", cfg.learning_rate);
    if (cfg.dim <= 0 || cfg.heads <= 0 || cfg.dim % cfg.heads != 0 || cfg.blocks < 0 || cfg.seq <= 0 ||
        cfg.batch <= 0 || cfg.steps < 0) {
      throw std::invalid_argument("--dim must be a positive multiple of --heads, and --seq, --batch positive, --blocks, "
                                  "--steps at least 0");
    }
    const std::string corpus_path = examples::flag(argc, argv, "corpus", "/usr/share/common-licenses/GPL-3");
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));
    uint64_t batch_stream = static_cast<uint64_t>(examples::int_flag(argc, argv, "data_seed", 42));

    Corpus corpus = load_corpus(corpus_path, cfg.seq);
    const int64_t vocab = static_cast<int64_t>(corpus.vocab.size());
    std::printf("corpus %s (Debian's base-files): %zu characters, %lld distinct\n", corpus_path.c_str(),
                corpus.ids.size(), (long long)vocab);
    std::shared_ptr<Model> model = applications::char_transformer_lm(
        {.vocab = vocab, .context = cfg.seq, .dim = cfg.dim, .heads = cfg.heads, .blocks = cfg.blocks});
    std::printf("model: dim %lld, %lld heads, %lld blocks, context %lld, %lld parameters\n", (long long)cfg.dim,
                (long long)cfg.heads, (long long)cfg.blocks, (long long)cfg.seq, (long long)model->count_params());
    const std::string init_in = examples::flag(argc, argv, "initial_weights", "");
    if (!init_in.empty()) load_initial(*model, init_in);
    const std::string init_out = examples::flag(argc, argv, "save_initial", "");
    if (!init_out.empty()) save_initial(*model, init_out);

    const bool pytorch_adam = examples::switch_flag(argc, argv, "pytorch_adam");
    optim::Adam optimizer(pytorch_adam ? optim::AdamOptions{.learning_rate = cfg.learning_rate, .epsilon = 1e-8f,
                                                             .pytorch_style = true}
                                       : optim::AdamOptions{.learning_rate = cfg.learning_rate});
    SparseCategoricalCrossentropy loss_fn(/*from_logits=*/true);
    const Tensor where = applications::lm_positions(cfg.batch, cfg.seq);
    std::vector<double> losses;
    const std::vector<Variable> vars = model->trainable_variables();
    for (int64_t step = 0; step < cfg.steps; ++step) {
      Batch batch = next_batch(corpus, cfg, batch_stream);
      Tensor loss;
      std::vector<Tensor> grads;
      {
        GradientTape tape;
        Tensor logits = model->call({batch.x, where}, /*training=*/true)[0];
        loss = loss_fn(reshape(batch.y, {-1}), reshape(logits, {cfg.batch * cfg.seq, vocab}));
        grads = tape.gradient(loss, vars);
      }
      optimizer.apply_gradients(grads, vars);
      losses.push_back(loss.item());
      if (step % 100 == 0 || step + 1 == cfg.steps) {
        std::printf("step %lld: loss %.4f\n", (long long)step + 1, losses.back());
      }
    }
    const std::string losses_out = examples::flag(argc, argv, "losses_out", "");
    if (!losses_out.empty()) {
      std::ostringstream text;
      for (double l : losses) {
        char line[32];
        std::snprintf(line, sizeof line, "%.9g\n", l);
        text << line;
      }
      base::write_file_atomically(losses_out, text.str());
    }
    if (!losses.empty()) std::printf("final training loss %.4f\n", losses.back());

    const std::string prompt = examples::flag(argc, argv, "prompt", "The GNU General Public License ");
    const int64_t count = examples::int_flag(argc, argv, "generate", smoke ? 80 : 400);
    const float temperature = float_flag(argc, argv, "temperature", 0.8f);
    const uint64_t sample_seed = static_cast<uint64_t>(examples::int_flag(argc, argv, "sample_seed", 7));
    std::string text = generate(*model, corpus, cfg, prompt, count, temperature, sample_seed);
    std::printf("sample (temperature %.2f, seed %llu):\n%s%s\n", temperature, (unsigned long long)sample_seed,
                prompt.c_str(), text.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "char_lm: %s\n", e.what());
    return 1;
  }
  return 0;
}
