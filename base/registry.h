#pragma once
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include "base/config_reader.h"
#include "base/json.h"

namespace kiln::base {

// A thread-safe table from names to entries: Kiln's registries of layers, models, optimizers,
// losses and learning-rate schedules (Keras's from_config by class name). Keep one in a
// function-local static, so registrations from static initializers in other files find it
// built. Lookups copy the entry out, so a factory runs outside the lock and may itself look up
// others (a model's factory builds its layers).
template <typename Entry>
class Registry {
 public:
  // Registering a name again replaces its entry.
  void add(const std::string& name, Entry entry) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_[name] = std::move(entry);
  }
  std::optional<Entry> find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }
  bool contains(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.count(name) > 0;
  }
  std::vector<std::string> names() const {  // sorted
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [name, entry] : entries_) out.push_back(name);
    return out;
  }
  // "a, b, c": the names for an error message.
  std::string joined_names() const {
    std::string out;
    for (const std::string& n : names()) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

// Classes saved Keras-style, {"class_name": ..., "config": {...}}, and looked up both ways: by
// the class name a file holds, and by the exact C++ type of an object being saved (a subclass
// of a registered class is not that class: it would come back as its base). Optimizers, their
// schedules and losses use it; Made is the pointer from_config returns.
template <typename Base, typename Made>
class ClassRegistry {
 public:
  // Adds the class's keys to its config (after "name", for kinds that have one).
  using ToConfig = std::function<void(const Base& object, Json& config)>;
  // Reads them all: deserialize() fails for a key left unread.
  using FromConfig = std::function<Made(ConfigReader& config)>;

  // kind: "optimizer", as errors name it; register_function: what a user calls to register.
  // named: the config starts with the object's name ("name"), read back and dropped.
  ClassRegistry(std::string kind, std::string register_function, bool named)
      : kind_(std::move(kind)), register_function_(std::move(register_function)), named_(named) {}

  // Class T, whose to_config gets the object as a T.
  template <typename T>
  void add(const std::string& class_name, std::function<void(const T&, Json&)> to_config, FromConfig from_config) {
    ToConfig as_base;
    if (to_config) {
      as_base = [f = std::move(to_config)](const Base& object, Json& config) { f(static_cast<const T&>(object), config); };
    }
    add(class_name, typeid(T), std::move(as_base), std::move(from_config));
  }
  void add(const std::string& class_name, const std::type_info& type, ToConfig to_config, FromConfig from_config) {
    if (class_name.empty() || !to_config || !from_config) {
      throw std::invalid_argument(register_function_ + ": needs a class name, to_config and from_config");
    }
    Entry entry{class_name, std::move(to_config), std::move(from_config)};
    by_name_.add(class_name, entry);
    by_type_.add(type.name(), std::move(entry));
  }
  std::vector<std::string> names() const { return by_name_.names(); }

  // `name` is the object's own name, for kinds that are named.
  Json serialize(const Base& object, const std::string& name = "") const {
    std::optional<Entry> entry = by_type_.find(typeid(object).name());
    if (!entry) {
      throw std::invalid_argument("the " + kind_ + (named_ ? " '" + name + "'" : "") +
                                  " is of a class that is not registered (registered: " + by_name_.joined_names() +
                                  "), so it cannot be saved with the model: register it with " + register_function_ +
                                  ", or save with include_optimizer = false and compile() again after loading");
    }
    Json config = Json::map();
    if (named_) config.set("name", name);
    entry->to_config(object, config);
    return Json::map().set("class_name", entry->class_name).set("config", std::move(config));
  }

  Made deserialize(const Json& serialized) const {
    ConfigReader outer(serialized, kind_);
    std::string class_name = outer.string("class_name");
    const Json& config = outer.get("config");
    outer.finish();
    std::optional<Entry> entry = by_name_.find(class_name);
    if (!entry) {
      throw std::invalid_argument("unknown " + kind_ + " class '" + class_name + "': register it with " +
                                  register_function_ + " (registered: " + by_name_.joined_names() + ")");
    }
    ConfigReader r(config, class_name + " config");
    if (named_) r.string("name", "");
    Made made = entry->from_config(r);
    if (!made) throw std::invalid_argument("from_config of " + kind_ + " class '" + class_name + "' made nothing");
    r.finish();
    return made;
  }

 private:
  struct Entry {
    std::string class_name;
    ToConfig to_config;
    FromConfig from_config;
  };
  std::string kind_, register_function_;
  bool named_;
  Registry<Entry> by_name_;
  Registry<Entry> by_type_;  // by type_info::name(): each type keeps the to_config made for it
};

}  // namespace kiln::base
