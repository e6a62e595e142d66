"""Reference numbers of Keras's return_state, initial_state, Bidirectional(merge_mode=None) and
a seq2seq-style model (an encoder LSTM's final states start a decoder LSTM) trained with SGD,
for tests/recurrent_state_test.cc.

Run with Keras 3 (checked in: Keras 3.15.1, jax backend):
  KERAS_BACKEND=jax python tests/data/recurrent/make_state_reference.py > tests/data/recurrent/state_reference.json
Layer cases hold the layer's arguments, its weights in layer.weights order, the inputs (the
sequence, then the initial states when the call had them), the mask, and every output."""
import json

import numpy as np
import keras

CLASSES = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU, "SimpleRNN": keras.layers.SimpleRNN}


def tolist(a):
    return np.asarray(a).tolist()


def layer_case(name, cls, units, seed, mask=None, bidirectional="", initial_state=False, shape=(3, 5, 4), **kwargs):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, shape).astype("float32")
    layer = CLASSES[cls](units, **kwargs)
    if bidirectional != "":
        layer = keras.layers.Bidirectional(layer, merge_mode=bidirectional)
    layer.build(x.shape)
    for w in layer.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    out = {"name": name, "class_name": cls, "units": units, "options": kwargs, "inputs": [x.tolist()],
           "weights": [tolist(w) for w in layer.weights]}
    if bidirectional != "":
        out["merge_mode"] = bidirectional  # None: both outputs
    call_kwargs = {}
    if initial_state:
        states = (2 if cls == "LSTM" else 1) * (2 if bidirectional != "" else 1)
        init = [rng.uniform(-1, 1, (shape[0], units)).astype("float32") for _ in range(states)]
        out["inputs"] += [s.tolist() for s in init]
        call_kwargs["initial_state"] = init
    if mask is not None:
        m = np.array(mask, dtype=bool)
        out["mask"] = m.astype("float32").tolist()
        call_kwargs["mask"] = m
    result = layer(x, **call_kwargs)
    out["outputs"] = [tolist(r) for r in (result if isinstance(result, (list, tuple)) else [result])]
    return out


AFTER = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]

layer_cases = [
    layer_case("lstm_state", "LSTM", 4, 1, return_state=True),
    layer_case("lstm_state_sequence_initial", "LSTM", 3, 2, return_state=True, return_sequences=True,
               initial_state=True),
    layer_case("gru_state_masked_backwards_initial", "GRU", 4, 3, mask=AFTER, return_state=True, go_backwards=True,
               initial_state=True),
    layer_case("simple_rnn_state_initial", "SimpleRNN", 3, 4, return_state=True, initial_state=True),
    layer_case("bidirectional_lstm_state_concat_initial", "LSTM", 3, 5, bidirectional="concat", return_state=True,
               initial_state=True),
    layer_case("bidirectional_gru_none_sequence_masked", "GRU", 3, 6, mask=AFTER, bidirectional=None,
               return_sequences=True),
    layer_case("bidirectional_simple_rnn_none_state", "SimpleRNN", 2, 7, bidirectional=None, return_state=True),
]


# Seq2seq-style: LSTM(return_state) reads the sequence; its (h, c) start a second LSTM that
# reads it again and returns sequences; a Dense maps each step. SGD on MSE, no shuffling.
def seq2seq():
    rng = np.random.default_rng(20)
    steps, features, units, samples = 6, 3, 5, 8
    x = rng.uniform(-1, 1, (samples, steps, features)).astype("float32")
    y = np.cumsum(x, axis=1)[:, :, :2].astype("float32") * 0.5
    inp = keras.Input((steps, features))
    _, h, c = keras.layers.LSTM(units, return_state=True, name="encoder")(inp)
    seq = keras.layers.LSTM(units, return_sequences=True, name="decoder")(inp, initial_state=[h, c])
    out = keras.layers.Dense(2, name="head")(seq)
    model = keras.Model(inp, out)
    for w in model.weights:
        w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))
    weights = [tolist(w) for w in model.weights]
    before = tolist(model.predict(x, verbose=0))
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    return {"steps": steps, "features": features, "units": units, "x": x.tolist(), "y": y.tolist(),
            "weights": weights, "weight_paths": [w.path for w in model.weights], "predict_before": before,
            "loss": history.history["loss"], "predict_after": tolist(model.predict(x, verbose=0)),
            "weights_after": [tolist(w) for w in model.weights]}


print(json.dumps({"keras": keras.__version__, "backend": keras.backend.backend(), "layer_cases": layer_cases,
                  "seq2seq": seq2seq()}))
