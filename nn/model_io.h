#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/model.h"

namespace kiln::nn {

// Whole-model save and load (Keras model.save / load_model): the architecture as configs,
// the weights and, optionally, the compile() state, in one file. load_model needs no source
// code for the architecture (built-in layers, Functional, Sequential); custom layers and
// subclassed models are rebuilt through their registered factories (register_layer,
// register_model).
//
// Kiln saved model, version 1 (integers little-endian):
//   "KILNMODL"          8-byte magic
//   u32 version         = 1
//   u32 section_count   2, or 4 with the compile state
//   section_count times, in this order:
//     4-byte tag        "ARCH", "WGTS", then "COMP", "OPTS"
//     u64 length, then length bytes
//   u32 crc32           zlib CRC-32 of every byte before it
// ARCH: JSON {"class_name", "config"[, "build_config"]}: the model's Keras-style config
//       (Functional: layers with inbound nodes, input and output layers; Sequential: layers
//       and build input shape); build_config {"input_shape", "dtype"} for subclassed models.
// WGTS: a Kiln checkpoint (nn/checkpoint.h) of every variable, by name.
// COMP: JSON {"optimizer": {"class_name", "config"}, "loss": {"class_name", "config"},
//       "metrics": [...], "iterations": n}.
// OPTS: a Kiln checkpoint of the optimizer's slots, "<variable>/<slot>".
// Written atomically; loads parse and validate everything (sizes bounded by the bytes present)
// before building anything, and fail with std::runtime_error naming the file.
struct SaveModelOptions {
  bool include_optimizer = true;  // store compile() state when the model is compiled
};

void save_model(const Model& model, const std::string& path, const SaveModelOptions& options = {});
std::shared_ptr<Model> load_model(const std::string& path);

// The file's contents, parsed and checked for form but not yet built into a model.
struct SavedModel {
  Config architecture;
  NamedTensors weights;
  std::optional<Config> compile;
  NamedTensors optimizer_slots;
};
std::string serialize_model(const Model& model, const SaveModelOptions& options = {});
SavedModel parse_saved_model(std::string_view bytes, const std::string& source);
std::shared_ptr<Model> build_saved_model(const SavedModel& saved, const std::string& source);
// parse_saved_model then build_saved_model: load_model over bytes in memory (fuzzing).
std::shared_ptr<Model> load_model_from_bytes(std::string_view bytes, const std::string& source);

// The largest tensor a model being loaded may make while it probes its layers with one example,
// and the most work all the probes together may take (about 69 G multiply-adds: several
// ResNet-152s at 224x224, a few seconds).
constexpr uint64_t kMaxLoadActivationBytes = uint64_t{256} << 20;
constexpr double kMaxLoadMultiplyAdds = 68719476736.0;  // 2^36
// The budget for all those probe tensors together (each layer's inputs and output, one
// example): kMaxLoadActivationBytes, plus this many bytes per byte of weights the file holds,
// since a file's weights are what justify a large network. Measured by building them:
// applications::resnet50 at 224x224 probes 3.1 bytes per weight byte (319 MB), resnet18 at
// 224x224 (no stem downsampling) 18.3 (856 MB).
constexpr uint64_t kLoadActivationBytesPerWeightByte = 32;
uint64_t load_activation_budget(uint64_t weight_bytes);

}  // namespace kiln::nn
