"""Reference outputs of keras.layers.LSTM, GRU, SimpleRNN and Bidirectional for
tests/recurrent_layers_test.cc.

Run with Keras 3 (checked in: Keras 3.15.1, jax backend):
  KERAS_BACKEND=jax python tests/data/recurrent/make_reference.py > tests/data/recurrent/reference.json
Each case holds the layer's class and arguments, its weights in layer.weights order, the input,
the mask (when the call had one) and Keras's output."""
import json

import numpy as np
import keras

CLASSES = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU, "SimpleRNN": keras.layers.SimpleRNN}


def case(name, cls, units, seed, mask=None, bidirectional=None, shape=(3, 6, 4), **kwargs):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, shape).astype("float32")
    layer = CLASSES[cls](units, **kwargs)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, merge_mode=bidirectional)
    layer.build(x.shape)
    for w in layer.weights:  # biases too, so that they matter
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    out = {"name": name, "class_name": cls, "units": units, "options": kwargs, "input": x.tolist(),
           "weights": [np.asarray(w).tolist() for w in layer.weights],
           "weight_paths": [w.path for w in layer.weights]}
    if bidirectional:
        out["merge_mode"] = bidirectional
    call_kwargs = {}
    if mask is not None:
        m = np.array(mask, dtype=bool)
        out["mask"] = m.astype("float32").tolist()
        call_kwargs["mask"] = m
    out["output"] = np.asarray(layer(x, **call_kwargs)).tolist()
    return out


AFTER = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
AROUND = [[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]

cases = [
    case("lstm_sequence", "LSTM", 5, 1, return_sequences=True),
    case("lstm_last_backwards", "LSTM", 4, 2, go_backwards=True),
    case("lstm_masked_sequence", "LSTM", 4, 3, mask=AFTER, return_sequences=True),
    case("lstm_masked_around_last", "LSTM", 3, 4, mask=AROUND),
    case("gru_sequence", "GRU", 5, 5, return_sequences=True),
    case("gru_masked_last_backwards", "GRU", 4, 6, mask=AFTER, go_backwards=True),
    case("gru_no_bias", "GRU", 3, 7, use_bias=False, return_sequences=True),
    case("simple_rnn_sequence_backwards", "SimpleRNN", 3, 8, return_sequences=True, go_backwards=True),
    case("simple_rnn_masked_sequence", "SimpleRNN", 4, 9, mask=AROUND, return_sequences=True),
    case("bidirectional_lstm_concat_masked", "LSTM", 3, 10, mask=AFTER, bidirectional="concat", return_sequences=True),
    case("bidirectional_gru_sum_last", "GRU", 4, 11, bidirectional="sum"),
    case("bidirectional_simple_rnn_ave", "SimpleRNN", 3, 12, bidirectional="ave", return_sequences=True),
    case("bidirectional_lstm_mul_masked_last", "LSTM", 3, 13, mask=AROUND, bidirectional="mul"),
]
print(json.dumps({"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}))
