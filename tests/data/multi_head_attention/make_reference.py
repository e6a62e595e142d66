"""Reference outputs of keras.layers.MultiHeadAttention for tests/multi_head_attention_test.cc.

Run with Keras 3 (checked in: Keras 3.15.1, jax backend):
  KERAS_BACKEND=jax python tests/data/multi_head_attention/make_reference.py > tests/data/multi_head_attention/reference.json
Each case holds the layer's config, its weights by variable path, the inputs and Keras's output
(and attention scores)."""
import json

import numpy as np
import keras


def case(name, heads, key_dim, q_shape, v_shape, seed, call_masks=None, **layer_kwargs):
    rng = np.random.default_rng(seed)
    query = rng.uniform(-1, 1, q_shape).astype("float32")
    value = rng.uniform(-1, 1, v_shape).astype("float32")
    layer = keras.layers.MultiHeadAttention(heads, key_dim, **layer_kwargs)
    layer.build(query.shape, value.shape)
    for w in layer.weights:  # biases too, so that they matter
        w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))
    kwargs = {}
    out = {"name": name, "config": layer.get_config(), "query": query.tolist(), "value": value.tolist()}
    masks = call_masks or {}
    attention_mask = None
    if "attention_mask" in masks:
        attention_mask = masks["attention_mask"](rng, q_shape[1], v_shape[1])
        out["attention_mask"] = attention_mask.astype("float32").tolist()
    if "query_mask" in masks:
        qm = masks["query_mask"](rng, q_shape)
        vm = masks["value_mask"](rng, v_shape)
        out["query_mask"] = qm.astype("float32").tolist()
        out["value_mask"] = vm.astype("float32").tolist()
        # Keras's _compute_attention_mask: query mask [B, T, 1] & value mask [B, 1, S].
        auto = qm[:, :, None] & vm[:, None, :]
        attention_mask = auto if attention_mask is None else (attention_mask & auto)
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if masks.get("causal"):
        kwargs["use_causal_mask"] = True
        out["use_causal_mask"] = True
    y, scores = layer(query, value, return_attention_scores=True, **kwargs)
    try:  # the dot_product_attention path (Keras 3.15.1 on jax fails it for value_dim != key_dim)
        out["output_fused"] = np.asarray(layer(query, value, **kwargs)).tolist()
    except Exception:
        pass
    out["weights"] = {w.path: np.asarray(w).tolist() for w in layer.weights}
    out["output"] = np.asarray(y).tolist()
    out["scores"] = np.asarray(scores).tolist()
    return out


def random_mask(rng, t, s):
    m = rng.uniform(size=(2, t, s)) > 0.3
    m[0, 1, :] = False  # a query with no key left
    return m


def seq_mask(rng, shape):
    m = np.ones(shape[:2], dtype=bool)
    m[0, -2:] = False
    m[1, -1:] = False
    return m


cases = [
    case("cross", 2, 3, (2, 4, 6), (2, 5, 6), 1, value_dim=4),
    case("masked", 2, 3, (2, 4, 6), (2, 5, 6), 2, call_masks={"attention_mask": random_mask}),
    case("causal_self", 3, 2, (2, 5, 4), (2, 5, 4), 3, call_masks={"causal": True}),
    case("output_shape_no_bias", 2, 3, (2, 3, 6), (2, 4, 5), 4, output_shape=(2, 3), use_bias=False),
    case("sequence_masks", 2, 3, (2, 4, 6), (2, 5, 6), 5, call_masks={"query_mask": seq_mask, "value_mask": seq_mask}),
    case("rank4", 2, 3, (2, 2, 3, 6), (2, 2, 2, 6), 6),
]
print(json.dumps({"keras_version": keras.__version__, "backend": keras.backend.backend(), "cases": cases}))
